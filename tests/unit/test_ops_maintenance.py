"""Maintenance: a member's own record overrides the one for every process, and a draining
admission refuses new lookups saying why, with a Retry-After."""

from __future__ import annotations

import pytest

from bus.admission import Admission, Overloaded
from bus.ops.maintenance import MaintenanceFollower, maintenance_key


def test_a_members_own_record_overrides_the_one_for_all() -> None:
    changes: list[str | None] = []
    follower = MaintenanceFollower("127.0.0.1:9", "gateway-2", on_change=changes.append)
    follower._records[maintenance_key(None)] = {"on": True, "reason": "cluster upgrade"}
    follower._apply()
    assert follower.reason == "cluster upgrade"
    follower._records[maintenance_key("gateway-2")] = {"on": False}
    follower._apply()
    assert follower.reason is None
    follower._records.pop(maintenance_key("gateway-2"))
    follower._apply()
    assert changes == ["cluster upgrade", None, "cluster upgrade"]


def test_a_draining_admission_refuses_with_the_reason_and_a_retry_after() -> None:
    admission = Admission(max_in_flight=10)
    admission.admit()
    admission.draining = "upgrade to 1.2"
    with pytest.raises(Overloaded, match=r"maintenance \(upgrade to 1.2\)") as refused:
        admission.check()
    assert refused.value.retry_after_s >= 1
    admission.release()  # what was in flight still ends
    admission.draining = None
    admission.admit()
    assert admission.in_flight == 1
