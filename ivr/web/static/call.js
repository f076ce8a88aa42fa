// The call page's player: the waveform follows playback and seeks on click or arrow keys;
// a timeline entry seeks to its moment and plays. No inline script or style is allowed by
// the page's Content-Security-Policy, so everything is wired here from ids and data-*.
(function () {
  "use strict";

  var audio = document.getElementById("call-audio");
  if (!audio) {
    return; // no recording: the timeline is text only
  }
  var wave = document.getElementById("waveform");
  var played = document.getElementById("waveform-played");
  var cursor = document.getElementById("waveform-cursor");
  var position = document.getElementById("player-position");
  var width = Number(wave && wave.dataset.width) || 1000;
  var known = Number(audio.dataset.duration) || 0; // from the database, until the file says
  var entries = Array.prototype.slice.call(document.querySelectorAll("#timeline li[data-t]"));
  var list = document.getElementById("timeline");
  var currentAt = null;
  var touched = false; // the reviewer has played or sought
  var STEP = 5; // seconds per arrow key on the waveform

  function length() {
    return isFinite(audio.duration) && audio.duration > 0 ? audio.duration : known;
  }

  function mmss(t) {
    var s = Math.max(0, Math.floor(t));
    var m = Math.floor(s / 60);
    s = s % 60;
    return (m < 10 ? "0" : "") + m + ":" + (s < 10 ? "0" : "") + s;
  }

  // Entries of one moment (a key, the menu it leads to, its prompt) light up together;
  // nothing is lit before the reviewer plays or seeks, so the page opens calm.
  function highlight(t) {
    var at = null;
    if (touched) {
      for (var i = 0; i < entries.length; i++) {
        var et = Number(entries[i].dataset.t);
        if (et <= t + 0.05) { at = et; } else { break; } // entries are in time order
      }
    }
    if (at === currentAt) { return; }
    currentAt = at;
    var first = null;
    entries.forEach(function (entry) {
      var on = at !== null && Number(entry.dataset.t) === at;
      entry.classList.toggle("current", on);
      if (on && !first) { first = entry; }
    });
    if (first && list && !audio.paused) { follow(first); }
  }

  // scroll the timeline's own box (never the page) so the playing moment stays in view;
  // the list is position: relative, so an entry's offsetTop is measured inside it
  function follow(entry) {
    var top = entry.offsetTop;
    if (top < list.scrollTop || top > list.scrollTop + list.clientHeight - entry.offsetHeight) {
      list.scrollTop = Math.max(0, top - list.clientHeight / 3);
    }
  }

  function draw() {
    var d = length();
    var t = audio.currentTime || 0;
    var x = d > 0 ? Math.min(1, t / d) * width : 0;
    if (played) { played.setAttribute("width", String(x)); }
    if (cursor) { cursor.setAttribute("x1", String(x)); cursor.setAttribute("x2", String(x)); }
    if (wave) { wave.setAttribute("aria-valuenow", String(Math.round(t))); wave.setAttribute("aria-valuetext", mmss(t)); }
    if (position) { position.textContent = mmss(t); }
    highlight(t);
  }

  function seek(t, play) {
    touched = true;
    var d = length();
    t = Math.max(0, d > 0 ? Math.min(t, d) : t);
    audio.currentTime = t;
    draw();
    if (play) {
      var started = audio.play();
      if (started && started.catch) { started.catch(function () { /* the user may play it */ }); }
    }
  }

  ["timeupdate", "seeked", "loadedmetadata", "durationchange"].forEach(function (name) {
    audio.addEventListener(name, draw);
  });
  audio.addEventListener("play", function () { touched = true; draw(); });

  if (wave) {
    wave.addEventListener("click", function (event) {
      var box = wave.getBoundingClientRect();
      if (box.width > 0) {
        seek((event.clientX - box.left) / box.width * length(), false);
      }
    });
    wave.addEventListener("keydown", function (event) {
      var keys = {ArrowLeft: -STEP, ArrowDown: -STEP, ArrowRight: STEP, ArrowUp: STEP};
      if (event.key in keys) {
        seek((audio.currentTime || 0) + keys[event.key], false);
      } else if (event.key === "Home") {
        seek(0, false);
      } else if (event.key === "End") {
        seek(length(), false);
      } else if (event.key === " ") {
        if (audio.paused) { audio.play(); } else { audio.pause(); }
      } else {
        return;
      }
      event.preventDefault();
    });
  }

  entries.forEach(function (entry) {
    entry.addEventListener("click", function (event) {
      if (event.target.closest("a")) { return; }
      seek(Number(entry.dataset.t) || 0, true);
    });
  });

  draw();
})();
