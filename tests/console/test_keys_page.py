"""Keys (admin): create a key that is shown once, list, revoke; a revoked key's console signs out."""

from __future__ import annotations

import httpx
from console_support import ConsoleKeys, Shots, axe_scan
from live_server import LiveServer
from playwright.sync_api import Browser, Page, expect


def _open_keys(page: Page, key: str) -> None:
    page.goto("/console/keys")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/keys")
    expect(page.get_by_role("table", name="API keys")).to_be_visible()


def test_an_admin_creates_a_key_that_is_shown_once_and_works(
    page: Page, server: LiveServer, console_keys: ConsoleKeys, shots: Shots
) -> None:
    _open_keys(page, console_keys.make("admin", org="Keys Org"))
    page.get_by_label("Name").fill("PACS bridge")
    page.get_by_label("Role").select_option("predictor")
    page.get_by_role("button", name="Create key").click()
    new_key = page.get_by_label("The new key").input_value()
    assert new_key.startswith("fa_")
    expect(
        page.get_by_role("table", name="API keys").get_by_role("cell", name="PACS bridge", exact=True)
    ).to_be_visible()
    shots(page, "created")
    assert axe_scan(page) == []
    me = httpx.get(f"{server.url}/v1/keys/me", headers={"Authorization": f"Bearer {new_key}"}).json()
    assert (me["name"], me["role"], me["permissions"]) == ("PACS bridge", "predictor", ["predict"])
    page.reload()  # shown once: the list never holds it
    expect(page.get_by_role("table", name="API keys")).to_be_visible()
    assert new_key not in page.content()


def test_a_bad_name_is_refused_at_the_field(page: Page, console_keys: ConsoleKeys, shots: Shots) -> None:
    _open_keys(page, console_keys.make("admin", org="Keys Org"))
    page.get_by_label("Name").fill("bad\u0007name")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_be_visible()
    shots(page, "refused")


def test_a_revoked_key_is_signed_out_at_its_next_call(
    page: Page, browser: Browser, server: LiveServer, console_keys: ConsoleKeys, shots: Shots
) -> None:
    victim = console_keys.make("admin", org="Keys Org", name="to revoke")
    other = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.url)
    victim_page = other.new_page()
    try:
        _open_keys(victim_page, victim)
        _open_keys(page, console_keys.make("admin", org="Keys Org"))
        page.get_by_role("button", name="Revoke to revoke").click()
        page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
        row = page.get_by_role("row").filter(has_text="to revoke")
        expect(row.get_by_role("cell", name="revoked", exact=False)).to_be_visible()
        shots(page, "revoked")

        victim_page.reload()
        victim_page.wait_for_url("**/console/signin**")
        expect(victim_page.get_by_role("status")).to_contain_text("no longer accepted")
        assert victim_page.evaluate("sessionStorage.getItem('fairaudit.key')") is None
    finally:
        other.close()
