"""The expression language shared by kernel predicates and user-space conditions (§8)."""
