"""nox sessions. They reuse the current environment (no reinstall of the torch stack per call).

nox -s tests          # the test suite (pass pytest arguments after --)
nox -s lint           # ruff
nox -s quickstart     # the quickstart study, end to end
nox -s ablations      # studies/ablation.yaml; e.g. nox -s ablations -- --smoke
"""

import sys

import nox

nox.options.sessions = ["lint", "tests"]
PY = sys.executable


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    session.run(PY, "-m", "pytest", *session.posargs)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    session.run(PY, "-m", "ruff", "check", "rcl_study", "tests", "benchmarks", "noxfile.py")


@nox.session(venv_backend="none")
def quickstart(session: nox.Session) -> None:
    session.run(PY, "-m", "rcl_study.run", "studies/quickstart.yaml", "--resume", *session.posargs)


@nox.session(venv_backend="none")
def ablations(session: nox.Session) -> None:
    session.run(PY, "-m", "rcl_study.run", "studies/ablation.yaml", *session.posargs)
