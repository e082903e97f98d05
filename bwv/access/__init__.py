"""Who may do what: roles and the access policy, users and their tokens, stated reasons."""

from bwv.access.policy import CLIP_LIFECYCLE, POLICY, WHOLE_CUSTODY, Rule, custody_shown, rule_for
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
    "CLIP_LIFECYCLE",
    "MAX_REASON",
    "POLICY",
    "USER_ROLES",
    "WHOLE_CUSTODY",
    "AuthError",
    "Principal",
    "ReasonError",
    "Role",
    "Rule",
    "UserError",
    "add_user",
    "authenticate_user",
    "check_reason",
    "custody_shown",
    "issue_token",
    "list_users",
    "revoke_user",
    "rule_for",
    "shown_reason",
]
