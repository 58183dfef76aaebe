// scim-bridge admin page: the confirmation dialog of Bulk User Logout and of each row's force
// logout, page selection, and updating rows in place. Without this file every form still works
// (the server renders a confirmation page instead of the dialog).
"use strict";

(function () {
  const form = document.getElementById("bulk");
  const dialog = document.getElementById("confirm-logout");
  if (!form || !dialog || typeof dialog.showModal !== "function") {
    return;
  }
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const status = document.getElementById("result");
  const title = document.getElementById("confirm-title");
  const body = document.getElementById("confirm-body");
  const confirmButton = dialog.querySelector("[data-confirm]");
  const cancelButton = dialog.querySelector("[data-cancel]");
  const rowChecks = () => Array.from(form.querySelectorAll("[data-row-check]"));
  const pageCheck = form.querySelector("[data-select-page]");
  const allMatching = form.querySelector("[data-all-matching]");
  let pending = null;

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  function say(message, isError) {
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  async function post(url, data) {
    const response = await fetch(url, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrf },
    });
    let answer = {};
    try {
      answer = await response.json();
    } catch (err) {
      answer = { error_description: "the server answered " + response.status };
    }
    if (!response.ok) {
      throw new Error(answer.error_description || "the server answered " + response.status);
    }
    return answer;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const trigger = event.submitter;
    const data = new FormData(form, trigger);
    try {
      const preview = await post(form.action, data);
      pending = { data: data, trigger: trigger, preview: preview };
      const users = plural(preview.users, "user", "users");
      title.textContent = "Log out " + users + " and end " +
        plural(preview.sessions, "session", "sessions") + "?";
      body.textContent = "This ends " + plural(preview.sessions, "live session", "live sessions") +
        " now. Access and group memberships do not change: they can sign in again right away.";
      confirmButton.textContent = "Log out " + users;
      dialog.showModal();
      cancelButton.focus();
    } catch (err) {
      say("Nothing was done: " + err.message, true);
    }
  });

  cancelButton.addEventListener("click", function () {
    dialog.close();
  });

  dialog.addEventListener("close", function () {
    const trigger = pending && pending.trigger;
    if (trigger && document.contains(trigger)) {
      // A row's arrow is hidden while focus is outside its row: show it to take focus back.
      trigger.classList.add("returning");
      trigger.addEventListener("blur", function () {
        trigger.classList.remove("returning");
      }, { once: true });
      trigger.focus();
    }
  });

  confirmButton.addEventListener("click", async function () {
    if (!pending) {
      return;
    }
    const data = pending.data;
    data.set("confirm", pending.preview.confirm);
    confirmButton.disabled = true;
    try {
      const result = await post(form.dataset.logout, data);
      updateRows(result.user_ids);
      say(result.message + ".");
    } catch (err) {
      say("Nobody was logged out: " + err.message, true);
    } finally {
      confirmButton.disabled = false;
      dialog.close();
    }
  });

  function updateRows(userIds) {
    const chosen = userIds ? new Set(userIds) : null;  // null: every row matched the filter
    form.querySelectorAll("tr[data-user-id]").forEach(function (row) {
      if (chosen === null || chosen.has(row.dataset.userId)) {
        row.querySelector("[data-count]").textContent = "0";
        const byClient = row.querySelector("[data-by-client]");
        if (byClient) {
          byClient.remove();
        }
      }
    });
  }

  if (pageCheck) {
    pageCheck.addEventListener("change", function () {
      rowChecks().forEach(function (box) { box.checked = pageCheck.checked; });
    });
  }
  if (allMatching) {
    allMatching.addEventListener("change", function () {
      if (allMatching.checked) {
        rowChecks().forEach(function (box) { box.checked = true; });
        if (pageCheck) { pageCheck.checked = true; }
      }
    });
  }
  form.addEventListener("change", function (event) {
    if (event.target.matches("[data-row-check]") && !event.target.checked) {
      if (pageCheck) { pageCheck.checked = false; }
      if (allMatching) { allMatching.checked = false; }
    }
  });
})();
