"""README's IAM table and "First deploy" follow the role line for line: a
row per statement of template.yaml, in its order, and a dry run (or, for
APIs without one, a simulation) allowed and one refused per statement."""

from __future__ import annotations

import re

from template_helpers import REPO, statements

README = (REPO / "README.md").read_text()


def section(start: str, end: str) -> str:
    a = README.index(start)
    return README[a:README.index(end, a)]


def sids(template) -> list[str]:
    return [s["Sid"] for s in statements(template)]


def test_every_statement_has_a_sid(template):
    assert all(s.get("Sid") for s in statements(template))


def test_iam_table_has_one_row_per_statement_in_the_templates_order(template):
    table = section("### IAM permissions", "#### First deploy")
    rows = re.findall(r"^\| `([A-Za-z]+)` \|", table, re.MULTILINE)
    assert rows == sids(template)


def test_first_deploy_has_an_allowed_and_a_refused_request_per_statement(template):
    block = section("#### First deploy", "## Safety model")
    (commands,) = re.findall(r"```sh\n(.*?)```", block, re.DOTALL)
    comments = [line for line in commands.splitlines() if line.startswith("# ")]
    for sid in sids(template):
        mentioned = [c for c in comments if re.search(rf"\b{sid}\b", c)]
        assert any("allowed" in c for c in mentioned), f"{sid}: no allowed request in First deploy"
        assert any("refused" in c for c in mentioned), f"{sid}: no refused request in First deploy"
    # Every command is a dry run, a read, or IAM's simulator: nothing changes.
    for line in commands.splitlines():
        if line.startswith("aws ec2 "):
            assert "--dry-run" in line, line
        elif line.startswith("aws "):
            assert line.startswith(("aws service-quotas get-", "aws service-quotas list-",
                                    "aws iam simulate-principal-policy")), line
