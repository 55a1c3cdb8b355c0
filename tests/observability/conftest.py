"""Fixtures shared with the survey tests: a stand-in identity and its signing key."""

from tests.survey.test_service import identity_stub, signing_key  # noqa: F401
