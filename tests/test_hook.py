"""Which pushed refs deploy, and which are refused with a message saying what to do."""

from __future__ import annotations

from corral.deploy.hook import check_refs

OLD, NEW = "1" * 40, "2" * 40


def test_main_and_master_deploy() -> None:
    assert check_refs([f"{OLD} {NEW} refs/heads/main"]) == (NEW, None)
    assert check_refs([f"{'0' * 40} {NEW} refs/heads/master"]) == (NEW, None)


def test_other_branch_is_refused_with_how_to_deploy_it() -> None:
    commit, refusal = check_refs([f"{OLD} {NEW} refs/heads/feature"])
    assert commit is None and "git push corral feature:main" in (refusal or "")


def test_deleting_main_is_refused() -> None:
    commit, refusal = check_refs([f"{OLD} {'0' * 40} refs/heads/main"])
    assert commit is None and "Deleting" in (refusal or "")


def test_tags_are_refused() -> None:
    _, refusal = check_refs([f"{OLD} {NEW} refs/tags/v1"])
    assert refusal and "does not deploy" in refusal
