-- One database per service instance on the compose Postgres (the WM's is POSTGRES_DB).
CREATE DATABASE be_be1;
CREATE DATABASE be_be2;
