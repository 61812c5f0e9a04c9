{{/* The chart's labels, selector labels and names; one place for each. */}}

{{- define "magam.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "magam.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "magam.labels" -}}
{{ include "magam.selectorLabels" . }}
app.kubernetes.io/part-of: magam
app.kubernetes.io/component: {{ .component | default "service" }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* <repository>/<service>:<tag>; the tag falls back to image.tag and is never "latest". */}}
{{- define "magam.image" -}}
{{- $tag := .svc.tag | default .root.Values.image.tag -}}
{{- if eq $tag "latest" -}}
{{- fail (printf "services.%s: the tag 'latest' is not allowed; use an immutable tag (the git SHA)" .name) -}}
{{- end -}}
{{- printf "%s/%s:%s" .root.Values.image.repository .name $tag -}}
{{- end -}}
