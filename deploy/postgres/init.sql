-- parindex: one database per service, each owned by its own role
-- (docs/architecture.md, decision 4).
-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d/).
-- Passwords come from the container environment (deploy/.env.example) through psql's \getenv,
-- so no secret is written in this file. Services create their tables by migrating on start.
\set ON_ERROR_STOP on

\getenv identity_password PARINDEX_IDENTITY_DB_PASSWORD
\getenv survey_password PARINDEX_SURVEY_DB_PASSWORD
\getenv scoring_password PARINDEX_SCORING_DB_PASSWORD
\getenv notify_password PARINDEX_NOTIFY_DB_PASSWORD

CREATE ROLE parindex_identity LOGIN PASSWORD :'identity_password';
CREATE ROLE parindex_survey LOGIN PASSWORD :'survey_password';
CREATE ROLE parindex_scoring LOGIN PASSWORD :'scoring_password';
CREATE ROLE parindex_notify LOGIN PASSWORD :'notify_password';

CREATE DATABASE parindex_identity OWNER parindex_identity;
CREATE DATABASE parindex_survey OWNER parindex_survey;
CREATE DATABASE parindex_scoring OWNER parindex_scoring;
CREATE DATABASE parindex_notify OWNER parindex_notify;

-- A role reaches its own database only: nobody else may connect (the owner keeps CONNECT).
-- Roles may still connect to the maintenance database "postgres", where a service checks that
-- its database exists (parindex/db/engine.py ensure_database); they own nothing there.
REVOKE ALL ON DATABASE parindex_identity FROM PUBLIC;
REVOKE ALL ON DATABASE parindex_survey FROM PUBLIC;
REVOKE ALL ON DATABASE parindex_scoring FROM PUBLIC;
REVOKE ALL ON DATABASE parindex_notify FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE parindex_identity TO parindex_identity;
GRANT CONNECT, TEMPORARY ON DATABASE parindex_survey TO parindex_survey;
GRANT CONNECT, TEMPORARY ON DATABASE parindex_scoring TO parindex_scoring;
GRANT CONNECT, TEMPORARY ON DATABASE parindex_notify TO parindex_notify;
