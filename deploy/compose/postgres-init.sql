-- One database per service on the compose stack's PostGIS; api and push use geography columns.
CREATE DATABASE auth;
CREATE DATABASE api;
CREATE DATABASE push;
\connect api
CREATE EXTENSION IF NOT EXISTS postgis;
\connect push
CREATE EXTENSION IF NOT EXISTS postgis;
