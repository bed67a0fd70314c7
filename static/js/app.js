// OneTimeShare's own script: small enhancements on top of htmx. Every page works without it.
(function () {
  "use strict";

  // Elements that only make sense with JavaScript (copy buttons, the progress bar) start
  // hidden in the markup and are revealed here.
  function reveal(root) {
    root.querySelectorAll("[data-js-only]").forEach(function (element) {
      element.hidden = false;
    });
  }

  function formatBytes(count) {
    var units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    var size = count;
    var unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return unit === 0 ? count + " bytes" : size.toFixed(1).replace(/\.0$/, "") + " " + units[unit];
  }

  function formatSeconds(seconds) {
    if (!isFinite(seconds)) {
      return "";
    }
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) {
      return seconds + " s";
    }
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) {
      return minutes + " min " + (seconds % 60) + " s";
    }
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function announce(root, message) {
    var region = root.querySelector("[data-announce]") || document.querySelector("[data-announce]");
    if (region) {
      region.textContent = message;
    }
  }

  // --- copy buttons -------------------------------------------------------------------------

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) {
      return;
    }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    var text = "value" in source ? source.value : source.textContent;
    var done = function () {
      button.textContent = "Copied";
      announce(button.closest("section") || document, "Copied to the clipboard.");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {
        selectAll(source);
      });
    } else {
      selectAll(source);
    }
  });

  function selectAll(element) {
    if (element.select) {
      element.select();
    } else {
      var range = document.createRange();
      range.selectNodeContents(element);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
  }

  // --- file choice and drag and drop ----------------------------------------------------------

  function describeChoice(form) {
    var input = form.querySelector("input[type=file]");
    var label = form.querySelector("[data-file-choice]");
    if (!input || !label) {
      return;
    }
    var file = input.files && input.files[0];
    var limit = parseInt(form.getAttribute("data-max-bytes") || "0", 10);
    if (!file) {
      label.textContent = "No file chosen";
      return;
    }
    label.textContent = file.name + " (" + formatBytes(file.size) + ")";
    if (limit && file.size > limit) {
      label.textContent += " is larger than the " + formatBytes(limit) + " limit.";
    }
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches("form[data-upload-form] input[type=file]")) {
      describeChoice(event.target.form);
    }
  });

  document.addEventListener("dragover", function (event) {
    var zone = event.target.closest("[data-dropzone]");
    if (zone) {
      event.preventDefault();
      zone.classList.add("dragging");
    }
  });

  document.addEventListener("dragleave", function (event) {
    var zone = event.target.closest("[data-dropzone]");
    if (zone && !zone.contains(event.relatedTarget)) {
      zone.classList.remove("dragging");
    }
  });

  document.addEventListener("drop", function (event) {
    var zone = event.target.closest("[data-dropzone]");
    if (!zone) {
      return;
    }
    event.preventDefault();
    zone.classList.remove("dragging");
    var input = zone.querySelector("input[type=file]");
    if (input && event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      describeChoice(input.form);
    }
  });

  // --- upload progress --------------------------------------------------------------------

  var uploads = new WeakMap();

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!form.matches || !form.matches("form[data-upload-form]")) {
      return;
    }
    var panel = form.querySelector("[data-progress]");
    if (!panel) {
      return;
    }
    panel.hidden = false;
    uploads.set(form, { started: performance.now() });
    // The server-side status fragment starts polling now (see upload_status.html).
    htmx.trigger(form.querySelector("[data-upload-status]"), "ots-upload-started");
  });

  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = event.detail.elt;
    var state = form && uploads.get(form);
    if (!state || !event.detail.lengthComputable) {
      return;
    }
    var loaded = event.detail.loaded;
    var total = event.detail.total;
    var elapsed = (performance.now() - state.started) / 1000;
    var speed = elapsed > 0 ? loaded / elapsed : 0;
    var percent = total ? Math.floor((loaded * 100) / total) : 0;
    var bar = form.querySelector("[data-progress] progress");
    var text = form.querySelector("[data-progress-text]");
    bar.value = percent;
    bar.textContent = percent + " %";
    text.textContent =
      percent + " % \u00b7 " + formatBytes(loaded) + " of " + formatBytes(total) + " \u00b7 " +
      formatBytes(speed) + "/s" +
      (speed > 0 && loaded < total ? " \u00b7 " + formatSeconds((total - loaded) / speed) + " left" : "");
  });

  // --- one-shot downloads ------------------------------------------------------------------

  // A plain form post saves the file and leaves the page as it was; say that the link is now
  // used up, and let the countdown fetch the final state.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-one-shot]")) {
      return;
    }
    window.setTimeout(function () {
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      button.textContent = "Download started";
      document.querySelectorAll("[data-countdown]").forEach(function (countdown) {
        window.setTimeout(function () {
          htmx.trigger(countdown, "ots-refresh");
        }, 1500);
      });
    }, 0);
  });

  // The password-checked download starts by itself.

  document.addEventListener("htmx:load", function (event) {
    reveal(event.detail.elt);
    event.detail.elt.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
      form.removeAttribute("data-autosubmit");
      form.requestSubmit();
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.documentElement.classList.add("js");
    reveal(document);
  });
})();
