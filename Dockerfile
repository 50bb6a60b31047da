# One image for every process of the system: WM, BE, emulators and the migration step.
# The command picks the role: `ticketing wm|be|emulators --host 0.0.0.0 --port …` or
# `ticketing migrate wm|be`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY ticketing_common ticketing_common
COPY ticketing_cli ticketing_cli
COPY wm_service wm_service
COPY be_service be_service
COPY emulators emulators
COPY migrations migrations
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 ticketing
# The package finds migrations/ beside it; keep the source tree as the working copy.
ENV PYTHONPATH=/app
USER ticketing
EXPOSE 8000
ENTRYPOINT ["ticketing"]
CMD ["wm", "--host", "0.0.0.0", "--port", "8000"]
