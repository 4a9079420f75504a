/* etm report: draws the plotly figures and wires the page together (no chart code here). */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("etm-data").textContent);
  var CONFIG = {displaylogo: false, responsive: true};
  var search = DATA.search;
  var index = new Map();
  for (var i = 0; i < search.searchable; i++) index.set(search.words[i], i);

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k]; else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }

  function openTopic(k) {
    var target = document.getElementById("topic-" + k);
    if (!target) return;
    document.querySelectorAll("article.topic.selected").forEach(function (a) { a.classList.remove("selected"); });
    target.classList.add("selected");
    target.scrollIntoView({block: "start"});
  }

  function topicLink(k) {
    var a = el("a", {href: "#topic-" + k, text: DATA.names[k]});
    a.addEventListener("click", function (ev) { ev.preventDefault(); openTopic(k); });
    return a;
  }

  function wordButton(word) {
    var b = el("button", {type: "button", "class": "word", text: word});
    b.addEventListener("click", function () { runSearch(word); });
    return b;
  }

  function runSearch(word) {
    var box = document.getElementById("search-box");
    box.value = word;
    showResults(word);
    document.getElementById("search").scrollIntoView({block: "start"});
  }

  function showResults(query) {
    var out = document.getElementById("search-results");
    out.textContent = "";
    var word = query.trim().toLowerCase();
    if (!word) return;
    var i = index.has(word) ? index.get(word) : (index.has(query.trim()) ? index.get(query.trim()) : -1);
    if (i < 0) {
      var close = [];
      for (var j = 0; j < search.searchable && close.length < 12; j++) {
        if (search.words[j].indexOf(word) === 0) close.push(search.words[j]);
      }
      out.appendChild(el("p", {"class": "note", text: close.length
        ? "\u201c" + query.trim() + "\u201d is not one of the searchable words; words that start with it:"
        : "\u201c" + query.trim() + "\u201d is not one of the searchable words."}));
      if (close.length) out.appendChild(el("p", {"class": "suggestions"}, close.map(wordButton)));
      return;
    }
    var near = search.near[i], nearList = el("ol", {"class": "near"});
    for (var n = 0; n < near.length; n += 2) {
      nearList.appendChild(el("li", {}, [wordButton(search.words[near[n]]), " " + (near[n + 1] / 1000).toFixed(2)]));
    }
    var topics = search.topics[i], topicList = el("ol", {"class": "weighing"});
    for (var t = 0; t < topics.length; t += 3) {
      topicList.appendChild(el("li", {}, [topicLink(topics[t]), " weight " + topics[t + 1].toPrecision(3) +
        ", rank " + topics[t + 2]]));
    }
    out.appendChild(el("div", {"class": "result", "data-word": search.words[i]}, [
      el("div", {}, [el("h3", {text: "Nearest words to \u201c" + search.words[i] + "\u201d"}), nearList]),
      el("div", {}, [el("h3", {text: "Topics that weigh it most"}), topicList])
    ]));
  }

  function showTopicOnMap(k) {
    var aside = document.getElementById("map-selection");
    aside.textContent = "";
    aside.appendChild(el("h3", {}, ["Topic " + k + ": ", topicLink(k)]));
    aside.appendChild(el("ol", {"class": "map-words"}, DATA.topics[k].words.map(function (w) {
      return el("li", {}, [wordButton(w)]);
    })));
  }

  var box = document.getElementById("search-box");
  box.addEventListener("input", function () { showResults(box.value); });
  box.addEventListener("keydown", function (ev) { if (ev.key === "Enter") showResults(box.value); });

  var colours = (DATA.figures["map-figure"].data[1].marker || {}).color || [];
  document.querySelectorAll("[data-topic-colour]").forEach(function (s) {
    s.style.background = colours[+s.getAttribute("data-topic-colour")] || "#888";
  });

  var drawn = Object.keys(DATA.figures).map(function (id) {
    var node = document.getElementById(id);
    if (!node) return Promise.resolve();
    var fig = DATA.figures[id];
    return Plotly.newPlot(node, fig.data, fig.layout, CONFIG).then(function (gd) {
      gd.on("plotly_click", function (ev) {
        var p = ev.points[0];
        if (id === "map-figure") {
          if (p.curveNumber === 1) showTopicOnMap(p.customdata); else runSearch(p.text);
        } else if (id === "prevalence-figure" || id === "overview-figure") {
          openTopic(p.customdata);
        }
      });
    });
  });
  Promise.all(drawn).then(function () { document.body.setAttribute("data-ready", "1"); });
})();
