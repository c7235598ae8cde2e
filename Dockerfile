FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=config.settings.production
WORKDIR /app
COPY pyproject.toml ./
COPY config ./config
COPY core ./core
COPY deployments ./deployments
COPY deliveries ./deliveries
COPY reviews ./reviews
COPY integrations ./integrations
RUN pip install --no-cache-dir .
COPY . .
RUN DJANGO_SECRET_KEY=build-only-secret-key-build-only-secret-key-0123456789 python manage.py collectstatic --no-input -v0
RUN useradd --system --home /app trustladder && chown -R trustladder /app
USER trustladder
EXPOSE 8000
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi:application"]
