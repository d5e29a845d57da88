# deltaweb: `make run` starts the service on the embedded default, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: install run test lint bench migrate clean

$(BIN)/.installed: requirements.txt
	@test -x $(BIN)/python || $(PYTHON) bin/bootstrap_venv.py $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

install: $(BIN)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

# API and console on http://127.0.0.1:$(PORT), Celery workers and beat; Ctrl-C stops all.
run: migrate
	$(BIN)/python manage.py collectstatic --noinput -v 0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py runstack --port $(PORT)

# Uses DATABASE_URL / CELERY_BROKER_URL when set (PostgreSQL, Redis), else the embedded defaults.
test: install
	DJANGO_SETTINGS_MODULE=deltaweb.settings.test $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

# Ratios against a raw WSGI baseline measured in the same run, then EC2 sync at scale
# (DATABASE_URL=postgres://... to measure on PostgreSQL; wrk is used when installed).
bench: install
	$(BIN)/python -m bench reads
	$(BIN)/python -m bench sync $(BENCH_SYNC_ARGS)
	$(BIN)/python -m bench admin

clean:
	rm -rf data/ .pytest_cache
