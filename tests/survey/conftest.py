"""Fixtures shared by the survey tests (defined in test_service.py)."""

from tests.survey.test_service import identity_stub, signing_key, survey  # noqa: F401
