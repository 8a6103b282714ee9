"""The gateway's error body: RFC 9457 problem details (`application/problem+json`)."""

from __future__ import annotations

from pydantic import Field

from bus.schemas.common import Model


class FieldError(Model):
    """One invalid part of a request."""

    field: str = Field(
        description="Dotted path of the field (`subject.personal_id`, `datasets.0`), or `(body)` "
        "when the body as a whole is not a JSON object of the right shape."
    )
    message: str = Field(description="What is wrong and what was expected.")
    type: str = Field(description="Error kind: pydantic's error type, or `unknown_dataset`.")


class Problem(Model):
    """RFC 9457 problem details; `errors` on 400, `retry_after_s` when over capacity (503)."""

    type: str = Field(default="about:blank", description="Problem type URI.")
    title: str = Field(description="Short summary of the problem kind.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str = Field(description="This occurrence, in words.")
    errors: list[FieldError] | None = Field(
        default=None, description="On 400: one entry per invalid field."
    )
    retry_after_s: int | None = Field(
        default=None, ge=1, description="On 503 over capacity: the Retry-After header's seconds."
    )
