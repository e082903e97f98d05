"""Who may do what: roles and the access policy, users and their tokens, stated reasons."""

from bwv.access.policy import POLICY, Rule, rule_for
from bwv.access.reasons import MAX_REASON, ReasonError, check_reason, shown_reason
from bwv.access.roles import USER_ROLES, Principal, Role
from bwv.access.users import (
    AuthError,
    UserError,
    add_user,
    authenticate_user,
    issue_token,
    list_users,
    revoke_user,
)

__all__ = [
    "MAX_REASON",
    "POLICY",
    "USER_ROLES",
    "AuthError",
    "Principal",
    "ReasonError",
    "Role",
    "Rule",
    "UserError",
    "add_user",
    "authenticate_user",
    "check_reason",
    "issue_token",
    "list_users",
    "revoke_user",
    "rule_for",
    "shown_reason",
]
