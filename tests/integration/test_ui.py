"""test_ui.py: the web dashboard in a real browser (Debian's chromium and chromium-driver through
python3-selenium, headless) against a husk stack of its own.

The browser runs inside the stack's network namespace, the only place its API is reachable: the
whole browser session runs in a thread that entered the namespace (setns applies to the calling
thread), so chromedriver, which that thread starts, and every socket selenium opens are in it.

Screenshots (the overview, a deployment page, its metrics tab, the same page dark on a narrow
screen, the node page) are saved in the test's tmp_path and copied to
$HUSK_BUILD/test-artifacts/ui/ (build/test-artifacts/ui/ by default).
"""

import json
import os
import re
import shutil
import threading
import time

import pytest

from husk_stack import BUILD, enter_netns, require

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoSuchElementException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # reported by the require() below
    webdriver = None

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = BUILD / "test-artifacts" / "ui"

pytestmark = pytest.mark.require(
    webdriver is not None and os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER),
    "the browser test needs chromium, chromium-driver and python3-selenium (deploy/install-deps.sh)")


def in_netns(netns, fn):
    """Run fn() in a thread that entered netns; its exception is raised here."""
    out = {}

    def run():
        try:
            enter_netns(netns)
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out["error"] = e

    t = threading.Thread(target=run, name=f"browser-{netns}")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
              "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(a)
    # The console, to fail on a CSP violation or a script error.
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def wait(driver, predicate, timeout=30, what="the page"):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(
        lambda d: predicate(d), message=f"timed out after {timeout} s waiting for {what}")


def first(driver, css):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def text(driver, css):
    """An element's text read in the page, in one step: polled elements are redrawn, and a
    reference held across a redraw goes stale."""
    return driver.execute_script("const el = document.querySelector(arguments[0]); return el ? el.textContent : null", css)


def set_text(driver, css, text):
    """Set a field as a paste would, telling the page (input event)."""
    driver.execute_script(
        "const el = document.querySelector(arguments[0]); el.value = arguments[1];"
        "el.dispatchEvent(new Event('input', {bubbles: true}));", css, text)


def login(driver, base, user, password):
    driver.get(f"{base}/ui/")
    # The first page a fresh Chromium renders: on a loaded 2-core host (make check runs two tests
    # at a time, each booting VMs) it took more than 30 s once.
    wait(driver, lambda d: first(d, "#login-user"), timeout=120, what="the login form")
    driver.find_element(By.ID, "login-user").send_keys(user)
    driver.find_element(By.ID, "login-pass").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    wait(driver, lambda d: user in (text(d, "#who") or ""), what=f"{user} logged in")


def console_errors(driver):
    """Script errors and policy violations; not the API's error statuses, which the page shows
    (a 404 from a route this server lacks, the 422 of the bad manifest)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and e.get("source") != "network"]


def ticks(stack, dep_id):
    r = stack.api("GET", f"/deployments/{dep_id}/logs?tail=200")
    assert r.status == 200, r
    return [int(m.group(1)) for e in r.json() for m in [re.match(r"tick (\d+)$", e["message"])] if m]


def save(driver, tmp_path, name):
    path = tmp_path / name
    driver.save_screenshot(str(path))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, ARTIFACTS / name)
    assert path.stat().st_size > 10_000, f"{name} looks empty"
    return path


GOOD = """deployments:
  web:
    namespace: shop
    image: {rootfs}
    command: ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"]
    resources: {{limits: {{cpu: "1", memory: 128Mi}}}}
    labels: {{app: web}}
    health_checks: [{{type: command, command: "true", interval: 2s}}]
"""

BAD = """deployments:
  bad:
    image: /nowhere
    ports:
      - published: 99999
        target: 80
"""


@pytest.mark.long
def test_dashboard(stack, tmp_path):
    base = f"http://127.0.0.1:{stack.port}"
    stack.login_admin()
    r = stack.api("POST", "/users", json={"username": "vera", "password": "viewer-pass-1", "role": "viewer"})
    assert r.status == 201, r

    def session():
        driver = browser()
        try:
            # ---- log in; a marker in the page proves later changes came without a reload ----
            login(driver, base, "admin", stack.admin_password())
            assert driver.execute_script("return sessionStorage.getItem('husk.token')"), "the token is kept per tab"
            assert driver.execute_script("return document.cookie") == "", "no cookie carries the session"
            driver.execute_script("window.__sameDocument = true")

            # ---- a manifest with an error: the violation shows under its field's line ----
            driver.get(f"{base}/ui/#/apply")
            wait(driver, lambda d: first(d, "#manifest"), what="the apply page")
            driver.execute_script("window.__sameDocument = true")
            set_text(driver, "#manifest", BAD)
            driver.find_element(By.ID, "btn-check").click()
            v = wait(driver, lambda d: first(d, 'tr.violation[data-path="deployments.bad.ports[0].published"]'),
                     what="the violation at ports[0].published")
            assert re.match(r"↑ deployments\.bad\.ports\[0\]\.published: \S", v.text), v.text
            # Right under the line that writes the field (line 5 of BAD).
            assert v.get_attribute("data-line") == "5"
            above = driver.execute_script("return arguments[0].previousElementSibling.textContent", v)
            assert "published: 99999" in above, above
            assert "Nothing was applied" in driver.find_element(By.ID, "apply-invalid").text
            assert stack.api("GET", "/deployments").json() == [], "a check applies nothing"

            # ---- apply from the page, watch it become running in the table without a reload ----
            set_text(driver, "#manifest", GOOD.format(rootfs=f"{stack.kit_dir}/rootfs/hello"))
            driver.find_element(By.ID, "btn-apply").click()
            link = wait(driver, lambda d: first(d, 'a.applied[data-name="web"]'), what="the apply result")
            dep_href = link.get_attribute("href")
            dep_id = dep_href.rsplit("/", 1)[1]
            driver.find_element(By.CSS_SELECTOR, 'nav a[href="#/deployments"]').click()
            wait(driver, lambda d: first(d, '.dep-status[data-name="web"]'), what="web in the table")
            wait(driver, lambda d: text(d, '.dep-status[data-name="web"]') == "running", timeout=180,
                 what="web running in the table")
            assert driver.execute_script("return window.__sameDocument === true"), "the page was reloaded"

            # Filters are in the URL.
            Select(driver.find_element(By.ID, "f-status")).select_by_value("running")
            wait(driver, lambda d: "status=running" in d.current_url, what="the filter in the URL")

            # ---- its logs: a line the workload writes after the page opened ----
            # Ten ticks first, so that a view of the last 5 lines cannot hold the first tick.
            stack.wait_for(lambda: max(ticks(stack, dep_id) or [0]) >= 10, timeout=120, what="ten ticks")
            before = max(ticks(stack, dep_id))
            driver.get(f"{base}/ui/#/deployments/{dep_id}?tab=logs&tail=5")

            def later_tick(d):
                got = [int(n) for n in re.findall(r"tick (\d+)", text(d, "#logs") or "")]
                return got and max(got) > before
            wait(driver, later_tick, timeout=60, what=f"a tick after {before} in the live logs")
            # Pause holds new lines back (and counts them); from the start reads the first line.
            driver.find_element(By.ID, "log-pause").click()
            wait(driver, lambda d: re.match(r"paused · [1-9]", text(d, "#log-state") or ""), timeout=30,
                 what="new lines held while paused")
            driver.find_element(By.ID, "log-pause").click()
            lines = lambda d: d.execute_script(  # noqa: E731
                "return [...document.querySelectorAll('#logs > div')].map(e => e.textContent)")
            assert not any(ln.endswith(" tick 1") for ln in lines(driver)), "tail=5 showed the first tick"
            driver.find_element(By.ID, "log-start").click()
            wait(driver, lambda d: "from=start" in d.current_url, what="from the start in the URL")
            wait(driver, lambda d: any(ln.endswith(" tick 1") for ln in lines(d)), timeout=30,
                 what="the first line, from the start")
            # The search filter narrows what is shown, and is in the URL.
            set_text(driver, "#log-search", f"tick {before + 1}")
            wait(driver, lambda d: "search=tick" in d.current_url, what="the search in the URL")
            shown = lines(driver)
            assert shown and all(ln.endswith(f" tick {before + 1}") for ln in shown), shown
            set_text(driver, "#log-search", "")
            # The level filter: the ticks are not errors.
            Select(driver.find_element(By.ID, "log-level")).select_by_value("error")
            wait(driver, lambda d: "level=error" in d.current_url, what="the level in the URL")
            assert not any(" tick " in ln for ln in lines(driver)), lines(driver)
            Select(driver.find_element(By.ID, "log-level")).select_by_value("")
            wait(driver, lambda d: any(" tick " in ln for ln in lines(d)), what="the ticks again")

            # ---- exec, with its output ----
            driver.get(f"{base}/ui/#/deployments/{dep_id}")
            wait(driver, lambda d: first(d, "#exec-cmd"), what="the exec form")
            driver.find_element(By.ID, "exec-cmd").send_keys("echo hello-from-exec")
            driver.find_element(By.ID, "btn-exec").click()
            out = wait(driver, lambda d: first(d, "#exec-stdout"), timeout=60, what="the exec output")
            assert out.text.strip() == "hello-from-exec"

            # ---- the other tabs, by keyboard (arrow keys move along the tablist) ----
            driver.find_element(By.ID, "tab-overview").send_keys(Keys.ARROW_RIGHT)
            wait(driver, lambda d: "tab=logs" in d.current_url, what="the logs tab by keyboard")
            driver.find_element(By.ID, "tab-events").click()
            wait(driver, lambda d: "InstanceStarted" in (text(d, "#events") or ""), what="the events")
            driver.find_element(By.ID, "tab-health").click()
            wait(driver, lambda d: re.search(r"check 0: command .*passing", text(d, "#health") or "") and
                 "Result" in text(d, "#health"), timeout=60, what="the command check passing, with its history")
            driver.find_element(By.ID, "tab-metrics").click()
            # Two samples of the instance (vmm-driver samples every 5 s, the page asks as often)
            # make a line in the CPU chart, kept while the page is open.
            wait(driver, lambda d: d.execute_script(
                "const p = document.querySelector('#metrics figure polyline');"
                "return p !== null && p.getAttribute('points').trim().split(' ').length >= 2"),
                timeout=60, what="two samples in the CPU chart")
            assert "CPU" in text(driver, "#metrics figure figcaption")
            save(driver, tmp_path, "ui-deployment-metrics.png")
            driver.find_element(By.ID, "tab-overview").click()

            # ---- screenshots ----
            wait(driver, lambda d: "running" in (text(d, "#dep-status") or ""), what="the status badge")
            save(driver, tmp_path, "ui-deployment.png")
            driver.get(f"{base}/ui/#/")
            wait(driver, lambda d: first(d, "#ov-status"), what="the overview")
            wait(driver, lambda d: "shop" in (text(d, "#main") or ""), what="the namespace in the overview")
            save(driver, tmp_path, "ui-overview.png")

            # ---- every other page opens; a token is shown once; the audit log has the apply ----
            for seg in ("namespaces", "configs", "secrets", "volumes", "tokens", "users", "webhooks", "node", "apply"):
                driver.find_element(By.CSS_SELECTOR, f'nav a[href="#/{seg}"]').click()
                wait(driver, lambda d: (text(d, "#main h1") or "").strip(), what=f"the {seg} page")
            driver.get(f"{base}/ui/#/namespaces?ns=shop")
            wait(driver, lambda d: "POST /deployments" in (text(d, "#audit") or ""), what="the apply in shop's audit log")
            driver.get(f"{base}/ui/#/tokens")
            wait(driver, lambda d: first(d, "#token-create-name"), what="the token form")
            driver.find_element(By.ID, "token-create-name").send_keys("ci")
            driver.find_element(By.ID, "token-create-scopes").send_keys("deployments:read")
            driver.find_element(By.CSS_SELECTOR, "#token-create button[type=submit]").click()
            shown = wait(driver, lambda d: text(d, "#token-value"), what="the new token")
            r = stack.api("GET", "/deployments", headers={"Authorization": f"Bearer {shown.strip()}"}, auth=False)
            assert r.status == 200, r
            driver.refresh()
            wait(driver, lambda d: "ci" in (text(d, "#main table") or ""), what="the token listed")
            assert first(driver, "#token-value") is None, "a token is shown once"

            # ---- dark theme, narrow screen ----
            driver.find_element(By.ID, "theme").click()
            assert driver.execute_script("return document.documentElement.dataset.theme") == "dark"
            driver.set_window_size(390, 900)
            driver.get(f"{base}/ui/#/deployments/{dep_id}")
            wait(driver, lambda d: "running" in (text(d, "#dep-status") or ""), what="the deployment, narrow")
            assert driver.find_element(By.ID, "nav-toggle").is_displayed()
            assert not driver.find_element(By.ID, "nav").is_displayed()
            wide = driver.execute_script("return document.documentElement.scrollWidth")
            assert wide <= 400, f"the page is {wide} px wide on a 390 px screen"
            save(driver, tmp_path, "ui-deployment-narrow-dark.png")
            driver.set_window_size(1280, 1000)

            errors = console_errors(driver)
            assert not errors, "\n".join(e["message"] for e in errors)

            # ---- re-apply (unchanged: the spec is as stored) and scale, from the page ----
            driver.get(f"{base}/ui/#/deployments/{dep_id}")
            wait(driver, lambda d: first(d, "#btn-restart"), what="the actions")
            driver.find_element(By.ID, "btn-restart").click()
            driver.find_element(By.CSS_SELECTOR, "dialog button[type=submit]").click()
            wait(driver, lambda d: "re-applied" in (text(d, "#toasts") or ""), what="the re-apply's answer")
            assert "re-applied (unchanged)" in text(driver, "#toasts"), text(driver, "#toasts")
            scale = driver.find_element(By.ID, "scale-n")
            scale.clear()
            scale.send_keys("0")
            driver.find_element(By.ID, "btn-scale").click()
            stack.wait_for(lambda: stack.api("GET", f"/deployments/{dep_id}").json()["replicas"] == 0, timeout=30,
                           what="replicas 0 after Scale")
            assert stack.api("GET", f"/deployments/{dep_id}").json()["generation"] == 2

            # ---- a viewer: no delete, no exec; the API refuses a forced request ----
            driver.find_element(By.ID, "logout").click()
            wait(driver, lambda d: first(d, "#login-user"), what="the login form after logout")
            login(driver, base, "vera", "viewer-pass-1")
            driver.get(f"{base}/ui/#/deployments/{dep_id}")
            wait(driver, lambda d: first(d, "#dep-status"), what="the deployment page as a viewer")
            wait(driver, lambda d: "Instances" in (text(d, "#panel") or ""), what="the instances")
            for css in ("#btn-delete", "#btn-exec", "#btn-scale", "#exec-cmd"):
                assert first(driver, css) is None, f"a viewer sees {css}"
            assert first(driver, 'nav a[href="#/apply"]') is None
            forced = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "fetch('/deployments/' + arguments[0], {method: 'DELETE', headers: {Authorization: 'Bearer ' +"
                " sessionStorage.getItem('husk.token')}}).then(r => done(r.status), e => done(String(e)));", dep_id)
            assert forced == 403, forced
            forced = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "fetch('/deployments/' + arguments[0] + '/exec', {method: 'POST', headers: {Authorization: 'Bearer ' +"
                " sessionStorage.getItem('husk.token'), 'Content-Type': 'application/json'},"
                " body: JSON.stringify({command: ['true']})}).then(r => done(r.status), e => done(String(e)));", dep_id)
            assert forced == 403, forced
            return dep_id
        finally:
            driver.quit()

    dep_id = in_netns(stack.netns, session)
    assert stack.api("GET", f"/deployments/{dep_id}").status == 200, "the viewer deleted nothing"
    for name in ("ui-overview.png", "ui-deployment.png"):
        assert (tmp_path / name).exists()


def test_dashboard_webhooks(stack, tmp_path):
    base = f"http://127.0.0.1:{stack.port}"
    stack.login_admin()

    def session():
        driver = browser()
        try:
            login(driver, base, "admin", stack.admin_password())
            # A webhook made from the page; an event after it shows as a delivery (to a port where
            # nothing listens, in the stack's namespace: it stays pending or fails).
            driver.get(f"{base}/ui/#/webhooks")
            wait(driver, lambda d: first(d, "#webhook-create-url"), what="the webhook form")
            driver.find_element(By.ID, "webhook-create-name").send_keys("ops")
            driver.find_element(By.ID, "webhook-create-url").send_keys("http://127.0.0.1:9/hook")
            driver.find_element(By.ID, "webhook-create-secret").send_keys("a-secret-of-16-bytes-or-more")
            Select(driver.find_element(By.ID, "webhook-create-level")).select_by_value("info")
            driver.find_element(By.CSS_SELECTOR, "#webhook-create button[type=submit]").click()
            wait(driver, lambda d: "http://127.0.0.1:9/hook" in (text(d, "#main table") or ""), what="the webhook listed")
            r = stack.api("POST", "/deployments", json={"name": "hooked", "image": f"{stack.kit_dir}/rootfs/hello",
                                                         "replicas": 0})
            assert r.status in (200, 201), r
            driver.find_element(By.LINK_TEXT, "ops").click()
            wait(driver, lambda d: "Created" in (text(d, "#deliveries") or ""), timeout=30, what="the Created delivery")
            errors = console_errors(driver)
            assert not errors, "\n".join(e["message"] for e in errors)
        finally:
            driver.quit()

    in_netns(stack.netns, session)


def test_dashboard_node(stack, tmp_path):
    base = f"http://127.0.0.1:{stack.port}"

    def session():
        driver = browser()
        try:
            login(driver, base, "admin", stack.admin_password())
            driver.get(f"{base}/ui/#/node")
            wait(driver, lambda d: "apiserver" in (text(d, "#main") or ""), what="the node's daemons")
            for what in ("memory admitted", "disk used", "hostname", "Runtimes", "qemu"):
                assert what in text(driver, "#main"), (what, text(driver, "#main"))
            save(driver, tmp_path, "ui-node.png")
            driver.get(f"{base}/ui/#/")
            wait(driver, lambda d: "memory admitted" in (text(d, "#main") or ""), what="the node's capacity in the overview")
            errors = console_errors(driver)
            assert not errors, "\n".join(e["message"] for e in errors)
        finally:
            driver.quit()

    in_netns(stack.netns, session)
