"""An operator's session in the console, in headless Chromium, against gunicorn and a
real worker: log in, read the fleet overview, open a failing account and sync it,
delete an image and follow its operation, retry a refused delete to success,
cancel a running create, grant an account to a group and use the API as a member.
The server log must show no static 404 and no 500; screenshots are test artefacts.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from images import operations, services, sync
from images.models import Image, Operation, SyncRun
from providers.exceptions import ProviderError
from tests.conftest import make_account, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.django_db(transaction=True)]
OP = Operation.Status
PASSWORD = "operator-pw-123"
ACCESS_LINE = re.compile(r'"(?:GET|POST|HEAD) (\S+) HTTP/[0-9.]+" (\d{3}) ')
# Set to a folder (docs/) to refresh the README's screenshot from this run.
SCREENSHOT_COPY = os.environ.get("DELTAWEB_SCREENSHOT_COPY", "")


class Operator:
    """The browser, with the few gestures the scenario repeats."""

    def __init__(self, driver, base: str, shots: Path) -> None:
        from selenium.webdriver.common.by import By

        self.driver, self.base, self.shots, self.by = driver, base, shots, By
        self.console_errors: list[str] = []

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)
        self._collect_console()

    def find(self, css: str):
        return self.driver.find_element(self.by.CSS_SELECTOR, css)

    def find_all(self, css: str):
        return self.driver.find_elements(self.by.CSS_SELECTOR, css)

    def click(self, css: str, navigates: bool = True) -> None:
        self._press(self.find(css), navigates)

    def click_link(self, text: str) -> None:
        self._press(self.driver.find_element(self.by.LINK_TEXT, text), True)

    def click_nth(self, css: str, index: int) -> None:
        self._press(self.find_all(css)[index], True)

    def _press(self, element, navigates: bool) -> None:
        """Click, and when it loads a page wait for that page (a loaded machine is slow)."""
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        before = self.find("html")
        element.click()
        if navigates:
            WebDriverWait(self.driver, 60).until(expected_conditions.staleness_of(before))
        self._collect_console()

    def text(self, css: str = "body") -> str:
        return self.find(css).text

    def messages(self) -> str:
        return " ".join(m.text for m in self.find_all("ul.messagelist li"))

    def reload_until(self, css: str, wanted: str, timeout: float = 30) -> None:
        def shows() -> bool:
            self.driver.refresh()
            found = self.find_all(css)
            return bool(found) and wanted in found[0].text

        wait_until(shows, timeout, f"{wanted!r} in {css} of {self.driver.current_url}")
        self._collect_console()

    def screenshot(self, name: str, height: int = 0) -> Path:
        """The page as a PNG artefact: its top ``height`` pixels, or the whole of it."""
        if not height:
            height = min(
                max(int(self.driver.execute_script("return document.body.scrollHeight")), 1000), 4000
            )
        self.driver.set_window_size(1400, height)
        path = self.shots / name
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1400, 1000)
        return path

    def _collect_console(self) -> None:
        for entry in self.driver.get_log("browser"):
            if entry["level"] == "SEVERE":
                self.console_errors.append(entry["message"])


def api(base: str, user: str, password: str, method: str, path: str, provider: str | None = None):
    headers = {"Accept": "application/xml"}
    if provider:
        headers.update({"X-Deltacloud-Driver": "mock", "X-Deltacloud-Provider": provider})
    return requests.request(method, base + path, auth=(user, password), headers=headers, timeout=30)


def fleet(operator_user):
    """The accounts an operator meets: healthy with history, failing, rejected, disabled..."""
    alpha = make_account("alpha", provider="alpha", is_default=True)
    driver = services.build_driver(account=alpha)
    for night in range(4):  # a growing catalog over a few syncs
        sync.catalog_sync(account=alpha)
        driver.create_image(instance_id="inst1", name=f"nightly-{night}")
    sync.catalog_sync(account=alpha)
    for name in ("web-v1", "web-v2"):
        operations.image_create(
            account=alpha, user=operator_user, instance_id="inst1", name=name, description=""
        )
    alpha.params = {"failure_rate": 1.0}
    alpha.save(update_fields=["params"])
    operations.image_create(
        account=alpha, user=operator_user, instance_id="inst1", name="web-v3", description=""
    )
    alpha.params = {}
    alpha.save(update_fields=["params"])

    broken = make_account("broken", provider="broken", params={"list_fault_after_pages": 0})
    for _ in range(3):
        with pytest.raises(ProviderError):
            sync.catalog_sync(account=broken)
    rejected = make_account(
        "rejected", provider="rejected", credentials={"username": "mockuser", "password": "x"}
    )
    with pytest.raises(ProviderError):
        sync.catalog_sync(account=rejected)
    rhev = make_account("rhev", provider="rhev", params={"profile": "rhevm"})
    sync.catalog_sync(account=rhev)
    slow = make_account("slow", provider="slow", params={"profile": "ec2", "create_delay": 600})
    sync.catalog_sync(account=slow)
    off = make_account("off", provider="off")
    off.enabled = False
    off.save(update_fields=["enabled"])
    return alpha, broken, rhev, slow


def test_an_operators_session(browser, console, stack, tmp_path):
    # given: an operator, a fleet, a member of a group with no account yet
    users = get_user_model()
    operator_user = users.objects.create_superuser("operator", password=PASSWORD)
    carol = users.objects.create_user("carol", password="carol-pw-123")
    team = Group.objects.create(name="ops-team")
    carol.groups.add(team)
    alpha, broken, rhev, slow = fleet(operator_user)
    # a delete the provider refuses (RHEV-M: template in use), carried by the worker
    refused = operations.image_delete(account=rhev, user=operator_user, external_id="img1")
    wait_until(lambda: Operation.objects.get(pk=refused.pk).status == OP.FAILED, 30, "the refusal")
    # a create the provider takes ten minutes over
    _, creating = operations.image_create(
        account=slow, user=operator_user, instance_id="inst1", name="golden", description=None
    )
    shots = tmp_path / "screenshots"
    shots.mkdir()
    op = Operator(browser, console, shots)

    # log in; the overview shows every account's health, worst first
    op.open("/admin/login/?next=/admin/")
    op.find("#id_username").send_keys("operator")
    op.find("#id_password").send_keys(PASSWORD)
    op.click("input[type=submit]")
    rows = {
        r.find_element(op.by.CSS_SELECTOR, "th").text: r.text for r in op.find_all("#fleet-overview tbody tr")
    }
    assert set(rows) == {"alpha", "broken", "rejected", "rhev", "slow", "off"}
    assert "credentials rejected" in rows["rejected"] and "failing" in rows["broken"]
    assert "disabled" in rows["off"] and "healthy" in rows["alpha"]
    assert "Unavailable: The mock provider failed" in rows["broken"]
    assert "rgba(183, 28, 28, 1)" == op.find(".dw-badge--bad").value_of_css_property(
        "color"
    )  # styled: CSS served
    op.screenshot("overview.png")

    # open the failing account and sync it now: the worker runs it, the history shows it
    op.click_link("broken")
    assert "failing" in op.text(".field-health")
    op.screenshot("failing-account.png", height=1350)
    op.click("#sync-now")
    assert "Sync of broken queued." in op.messages()
    wait_until(lambda: SyncRun.objects.filter(account=broken).count() == 4, 30, "the sync run")
    wait_until(
        lambda: not SyncRun.objects.filter(account=broken, finished_at__isnull=True).exists(), 30, "its end"
    )
    op.driver.refresh()
    assert len(op.find_all("#sync-runs tbody tr.dw-run-failed")) == 4
    # a disabled account says so instead of queueing a sync the worker would drop
    op.open("/admin/images/provideraccount/?health=disabled")
    op.click_link("off")
    op.click("#sync-now")
    assert "Account off is disabled: enable it to sync." in op.messages()

    # the healthy account's page: health first, counts linking to the rows, charts
    op.open(f"/admin/images/provideraccount/{alpha.pk}/change/")
    assert "healthy" in op.text(".field-health")
    assert len(op.find_all("#history svg.dw-chart")) == 3
    assert len(op.find_all("#sync-runs tbody tr")) == 5
    op.screenshot("account.png", height=1350)
    op.click(".field-counts a")  # the images count
    op.click_link("img2")
    op.click("a.deletelink")
    op.click("#confirm-delete")
    assert "Image img2 is hidden from the API" in op.messages()
    op.reload_until(".field-status_badge", "SUCCEEDED")
    assert "operator" in op.text(".field-requester")
    assert services.build_driver(account=alpha).get_image("img2") is None

    # retry the refused delete once the template is free: it succeeds
    for instance in ("inst0", "inst2"):
        assert api(console, "operator", PASSWORD, "POST", f"/api/instances/{instance}/stop", "rhev").ok
        assert api(console, "operator", PASSWORD, "DELETE", f"/api/instances/{instance}", "rhev").ok
    op.open(f"/admin/images/provideraccount/{rhev.pk}/change/")
    op.click_nth(".field-counts a", 3)  # failed operations
    op.click_link(str(refused.pk))
    assert "Template is being used" in op.text(".field-last_error")
    op.click("#retry-operation")
    assert f"Operation {refused.pk} retried as operation" in op.messages()
    op.reload_until(".field-status_badge", "SUCCEEDED")
    assert f"operation {refused.pk}" in op.text(".field-retry_of_link")

    # cancel the running create: final state at once, and the worker leaves it so
    op.open(f"/admin/images/provideraccount/{slow.pk}/change/")
    op.click_nth(".field-counts a", 2)  # running operations
    op.click_link(str(creating.pk))
    op.click("#cancel-operation")
    assert f"Operation {creating.pk} cancelled" in op.messages()
    assert "CANCELLED" in op.text(".field-status_badge")
    time.sleep(3)  # several of the worker's poll intervals
    assert Operation.objects.get(pk=creating.pk).status == OP.CANCELLED
    image = Image.objects.get(pk=creating.image_id)
    assert image.status == "FAILED" and image.failure_reason.startswith("Cancelled by operator")

    # grant an account to a group from the group's page; a member uses the API
    assert api(console, "carol", "carol-pw-123", "GET", "/api/images").status_code == 403
    op.open(f"/admin/auth/group/{team.pk}/change/")
    from selenium.webdriver.support.ui import Select

    Select(op.find("#id_provider_accounts_from")).select_by_visible_text(str(alpha))
    op.click("#id_provider_accounts_add", navigates=False)
    op.click("input[name=_save]")
    assert "was changed successfully" in op.messages()
    listing = api(console, "carol", "carol-pw-123", "GET", "/api/images")
    assert listing.status_code == 200 and "id='nightly-0'" in listing.text
    op.open(f"/admin/auth/user/{carol.pk}/change/")
    assert "alpha" in op.text(".field-accounts_through_groups")

    # every list fits a 1400 px window (no sideways scrolling)
    for changelist in ("provideraccount", "image", "instance", "operation", "syncrun"):
        op.open(f"/admin/images/{changelist}/")
        overflow = op.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the {changelist} list is {overflow} px too wide"

    # every action is in the admin history, with who did it
    op.open(f"/admin/images/provideraccount/{broken.pk}/history/")
    assert "Sync now: queued" in op.text("#change-history") and "operator" in op.text("#change-history")

    # then: static files served (hashed, compressed), no 404 for them, no 500 anywhere
    log = (tmp_path / "web.log").read_text()
    hits = ACCESS_LINE.findall(log)
    assert any(p.startswith("/static/admin/css/base.") and s == "200" for p, s in hits)
    assert [(p, s) for p, s in hits if p.startswith("/static/") and s == "404"] == []
    assert [(p, s) for p, s in hits if s.startswith("5")] == []
    assert "Traceback" not in log
    assert op.console_errors == []
    if SCREENSHOT_COPY:
        shutil.copy(shots / "account.png", Path(SCREENSHOT_COPY) / "console-account.png")
