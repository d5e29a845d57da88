"""The operators' console: account health and history, the cached catalog,
operations an operator can retry or cancel, and who may use which account.

Registered on the console's admin site (``images.admin_site.ConsoleSite``, made the
default site by ``images.apps.ConsoleAdminConfig``).
"""

from images.admin import access, accounts, catalog, operations  # noqa: F401
