# The service as a container image: the wheel built from this checkout (with GOV.UK
# Frontend's styles, from npm) installed into a slim Python. One image runs the web,
# the workers and the scheduler (compose.yaml); the settings come from the environment.

FROM node:20-bookworm-slim AS styles
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
RUN mkdir -p static/govuk \
 && cp -r node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.css \
          node_modules/govuk-frontend/dist/govuk/assets static/govuk/

FROM python:3.11-slim-bookworm AS wheel
WORKDIR /src
COPY . .
COPY --from=styles /src/static/govuk static/govuk
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
# DejaVu Sans: the class reset's printable slips (PDF) show names in any script.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --create-home --home-dir /var/lib/helpdesk helpdesk
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER helpdesk
WORKDIR /var/lib/helpdesk
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/helpdesk-metrics
EXPOSE 8000
CMD ["gunicorn", "-c", "python:helpdesk.serving", "--workers", "3", "--bind", "0.0.0.0:8000", "helpdesk.wsgi:app"]
