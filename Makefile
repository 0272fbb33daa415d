.PHONY: reproduce test lint
reproduce:
	bash scripts/reproduce.sh
test:
	bash scripts/test.sh
lint:
	.venv/bin/ruff check src tests benchmarks
