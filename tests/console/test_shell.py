"""The console's frame: pages and scripts served with a strict policy, sign-in, role-aware navigation,
sign-out, and where the key is (and is not) kept."""

from __future__ import annotations

import httpx
from console_support import ConsoleKeys, Shots, axe_scan, sign_in
from live_server import LiveServer
from playwright.sync_api import Page, expect


def test_pages_and_scripts_are_served_with_a_policy_that_forbids_inline_and_foreign_script(server: LiveServer) -> None:
    page = httpx.get(f"{server.url}/console/cohorts/abc%3Cscript%3E")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in page.text  # the path parameter is data, escaped
    assert page.headers["x-content-type-options"] == "nosniff"
    script = httpx.get(f"{server.url}/console/static/js/boot.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert httpx.get(f"{server.url}/console/static/js/nothing.js").status_code == 404
    assert httpx.get(f"{server.url}/console/no-such-page").status_code == 404
    assert httpx.get(f"{server.url}/console", follow_redirects=False).headers["location"] == "/console/"


def test_a_page_opened_without_a_key_goes_to_sign_in_and_back(page: Page, console_keys: ConsoleKeys) -> None:
    page.goto("/console/keys")
    page.wait_for_url("**/console/signin?next=%2Fconsole%2Fkeys")
    page.get_by_label("API key").fill(console_keys.make("admin", name="Dr Admin"))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/keys")
    expect(page.locator("#caller-name")).to_have_text("Dr Admin (admin)")


def test_a_wrong_key_is_refused_at_the_field_and_nothing_is_kept(page: Page, shots: Shots) -> None:
    page.goto("/console/signin")
    page.get_by_label("API key").fill("fa_nothere_wrongsecret")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    shots(page, "wrong-key")
    assert page.evaluate("sessionStorage.length") == 0
    assert axe_scan(page) == []


def test_navigation_shows_what_the_role_may_open_and_the_key_stays_out_of_urls_and_cookies(
    page: Page, console_keys: ConsoleKeys, shots: Shots
) -> None:
    admin = console_keys.make("admin")
    sign_in(page, admin)
    nav = page.get_by_role("navigation", name="Console")
    for label in ("Cohorts", "Train", "Evaluations", "Models", "Keys"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    assert admin not in page.url and page.context.cookies() == []
    assert page.evaluate("localStorage.length") == 0
    shots(page, "admin")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/signin**")
    assert page.evaluate("sessionStorage.getItem('fairaudit.key')") is None

    sign_in(page, console_keys.make("predictor"))
    expect(nav.get_by_role("link", name="Try it")).to_be_visible()
    for label in ("Cohorts", "Train", "Keys"):
        expect(nav.get_by_role("link", name=label)).to_be_hidden()
    page.goto("/console/train")
    expect(page.get_by_role("alert")).to_have_text("A predictor key cannot open this page.")
    shots(page, "predictor-refused")
