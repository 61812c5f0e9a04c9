import httpx
from fastapi import FastAPI

from servicekit.metrics import install_metrics


async def test_requests_are_counted_by_route_template_and_status() -> None:
    app = FastAPI()
    install_metrics(app, "demo")

    @app.get("/stores/{store_id}")
    async def store(store_id: str) -> dict[str, str]:
        return {"id": store_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for store_id in ("a", "b", "c"):
            await client.get(f"/stores/{store_id}")
        await client.get("/nowhere")
        text = (await client.get("/metrics")).text

    assert (
        'magam_http_requests_total{method="GET",route="/stores/{store_id}",service="demo",'
        'status="200"} 3.0' in text
    )
    assert 'route="/stores/a"' not in text  # raw paths would make labels unbounded
    assert (
        'magam_http_request_duration_seconds_count{method="GET",route="/stores/{store_id}"' in text
    )
    assert 'status="404"' in text
