"""The dashboard in a real headless Chromium, against real managers: it loads, lists a
session the CLI spawned, streams its new output lines, spawns from its form, and its
stop button stops a session."""

from __future__ import annotations

import sys
import time

from selenium.webdriver.common.by import By

from tests.browser import chromium, screenshot_dir, table_row, until
from tests.integration.conftest import Orch
from tests.integration.fake_model import Text, serve
from tests.integration.test_agents import _claude, agent, waited  # noqa: F401  (fixture)
from tests.integration.test_web import ECHO_ON_SIGNAL
from tests.integration.web import serving
from tests.waiting import wait_for


def test_the_dashboard_lists_streams_spawns_and_stops(orch: Orch) -> None:
    trigger = orch.owned_file("trigger", "")
    sid = orch.spawn(sys.executable, "-c", ECHO_ON_SIGNAL, str(trigger),
                     opts=["--name", "watched"])
    wait_for(lambda: "ready" in orch.logs_text(sid), what="the program to start")
    orch.use_config('[providers.myagent]\nbinary = "my-agent"\n'
                    'argv = ["run", "--", "{prompt!}"]\nresults = "text"\n')
    with serving(orch) as server, chromium() as driver:
        driver.get(server.url)  # the token once in the URL; a cookie from then on
        assert driver.title == "orch"
        # The form offers this machine's providers, its configuration's too.
        offered = until(lambda: [o.text for o in driver.find_elements(
            By.CSS_SELECTOR, "#spawn-provider option")][1:], what="the providers")
        assert offered == ["claude", "codex", "copilot", "gemini", "myagent", "ollama"]
        row = until(lambda: table_row(driver, "watched"), what="the CLI's session listed")
        assert "running" in row.text
        row.click()
        log = driver.find_element(By.ID, "log")
        until(lambda: "ready" in log.text, what="its output so far")
        trigger.write_text("x")
        written = time.monotonic()
        until(lambda: "line 1" in log.text, timeout=2.0, what="a new line within 2 s")
        assert time.monotonic() - written < 2.0

        # The form spawns as `orch spawn` would; the new session is selected.
        driver.find_element(By.ID, "spawn-name").send_keys("from-page")
        driver.find_element(By.ID, "spawn-text").send_keys("sleep 300")
        driver.find_element(By.CSS_SELECTOR, "#spawn button").click()
        made = wait_for(lambda: next((s for s in orch.ps() if s["name"] == "from-page"),
                                     None), what="the form's session")
        assert made["argv"] == ["sleep", "300"] and made["status"] == "running"
        until(lambda: table_row(driver, "from-page"), what="the new session listed")
        until(lambda: "MEM" in driver.page_source and "$" not in table_row(driver, "watched").text,
              what="the table")
        if (shots := screenshot_dir()) is not None and orch.scope == "system":
            table_row(driver, "watched").click()
            until(lambda: "line 1" in log.text, what="the log pane again")
            driver.save_screenshot(str(shots / "dashboard.png"))

        table_row(driver, "watched").click()
        until(lambda: "watched" in driver.find_element(By.ID, "title").text,
              what="watched selected")
        driver.find_element(By.ID, "stop").click()
        wait_for(lambda: orch.show(sid)["status"] == "stopped", what="the stop button's stop")
        until(lambda: "stopped" in table_row(driver, "watched").text, what="the table to say so")
        assert orch.show("from-page")["status"] == "running"

        # A spawn the API refuses says why, and keeps saying it past the next refresh
        # (every 2 s; before, the refresh wiped it within 2 s).
        driver.find_element(By.ID, "spawn-text").clear()
        driver.find_element(By.ID, "spawn-text").send_keys("/nonexistent/x")
        driver.find_element(By.CSS_SELECTOR, "#spawn button").click()
        error = driver.find_element(By.ID, "error")
        until(lambda: "cannot run" in error.text, what="the refusal")
        refreshes = driver.execute_script("return window.orchRefreshes")
        until(lambda: driver.execute_script("return window.orchRefreshes") > refreshes + 1,
              timeout=10, what="two refreshes")
        assert "cannot run" in error.text
        # Said where the user looks: in view under the header, however long the list.
        assert driver.execute_script("const box = document.getElementById('error')"
                                     ".getBoundingClientRect(); "
                                     "return box.top >= 0 && box.bottom <= innerHeight")

        # A quote never closed is refused in the page, rather than dropped.
        driver.find_element(By.ID, "spawn-text").clear()
        driver.find_element(By.ID, "spawn-text").send_keys('echo "unbalanced')
        driver.find_element(By.CSS_SELECTOR, "#spawn button").click()
        until(lambda: "never closed" in error.text, what="the refusal of the quote")
        assert not [s for s in orch.ps() if s["argv"][:1] == ["echo"]]

        # An ended session's stop and kill are off.
        table_row(driver, "watched").click()
        until(lambda: driver.find_element(By.ID, "kill").get_attribute("disabled"),
              what="kill disabled on an ended session")

        # On a phone's width the page does not scroll sideways, and the status shows
        # beside even a long name (cut, whole in its title).
        orch.spawn("sleep", "300", opts=["--name", "a-rather-long-session-name-for-a-phone"])
        driver.set_window_size(390, 800)
        until(lambda: driver.execute_script("const page = document.documentElement; "
                                            "return page.scrollWidth <= page.clientWidth"),
              what="the page to fit")
        # The row is found anew each time: each refresh (2 s) draws the table afresh.
        until(lambda: driver.execute_script(
            "const cell = arguments[0].cells[1].getBoundingClientRect(); "
            "return cell.right <= document.documentElement.clientWidth",
            table_row(driver, "a-rather-long-session-name-for-a-phone")),
            what="the long name listed, its status in view")


def test_the_dashboard_shows_what_an_agent_counted_and_said(
        agent: Orch) -> None:  # noqa: F811
    with serve([Text("the answer, in full")]) as (url, _):
        sid = _claude(agent, url, "say it")
        assert waited(agent, sid) == 0
    shown = agent.show(sid)
    with serving(agent) as server, chromium() as driver:
        driver.get(server.url)
        until(lambda: table_row(driver, "claude"), what="the agent listed").click()
        facts = driver.find_element(By.ID, "facts")
        # Before, only the provider: no tokens, cost or result.
        total = sum(shown["usage"].get(k, 0) for k in (
            "input_tokens", "output_tokens", "cache_creation_input_tokens",
            "cache_read_input_tokens"))
        until(lambda: f"{total:,} tokens" in facts.text, what="its tokens")
        assert f"output {shown['usage']['output_tokens']:,}" in facts.text  # as show says
        assert "$" in facts.text and "exit code 0" in facts.text
        assert driver.find_element(By.ID, "result").text == "the answer, in full"
