# One image for web, worker and beat (docker-compose.yml only changes the command).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=deltaweb.settings.production \
    DELTAWEB_DATA_DIR=/var/lib/deltaweb
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --system --home /var/lib/deltaweb deltaweb && mkdir -p /var/lib/deltaweb \
    && chown deltaweb /var/lib/deltaweb \
    && SECRET_KEY=build-only-key-build-only-key-build-only-key python manage.py collectstatic --noinput
USER deltaweb
EXPOSE 8000
CMD ["gunicorn", "-c", "deltaweb/gunicorn_conf.py", "deltaweb.wsgi"]
