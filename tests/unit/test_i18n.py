"""Translations and node docs: complete in every shipped language, and true to the nodes.

The nodes are read from the pack itself (NODE_CLASS_MAPPINGS, INPUT_TYPES, RETURN_NAMES), so an
input added to a node fails these tests until it is translated and documented.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import i18n_docs

SHIPPED = sorted(p.name for p in i18n_docs.LOCALES.iterdir() if (p / "main.json").is_file())
TRANSLATED = [lang for lang in SHIPPED if lang != "en"]
NODES = i18n_docs.node_classes()
PLACEHOLDER = re.compile(r"\{(\w+)\}")
CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def all_strings(data: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(data, dict):
        return [item for key, value in data.items() for item in all_strings(value, f"{path}.{key}")]
    return [(path, data)]


def test_the_shipped_languages_are_english_chinese_and_japanese() -> None:
    assert SHIPPED == ["en", "ja", "zh"]


@pytest.mark.parametrize("lang", SHIPPED)
def test_every_input_and_output_of_every_node_has_a_translation(lang: str) -> None:
    defs = i18n_docs.load_locale(lang)["nodeDefs"]
    missing = []
    for name, cls in NODES.items():
        node = defs.get(name, {})
        missing += [f"{name}.{field}" for field in ("display_name", "description") if not node.get(field)]
        for key, (_, opts, _) in i18n_docs.visible_inputs(cls).items():
            text = node.get("inputs", {}).get(key, {})
            if not text.get("name"):
                missing.append(f"{name}.inputs.{key}.name")
            if opts.get("tooltip") and not text.get("tooltip"):
                missing.append(f"{name}.inputs.{key}.tooltip")
        for i, (out, tip) in enumerate(i18n_docs.outputs(cls)):
            text = node.get("outputs", {}).get(str(i), {})
            if not text.get("name"):
                missing.append(f"{name}.outputs.{i}.name ({out})")
            if tip and not text.get("tooltip"):
                missing.append(f"{name}.outputs.{i}.tooltip ({out})")
        stale = set(node.get("inputs", {})) - set(i18n_docs.visible_inputs(cls))
        missing += [f"{name}.inputs.{key} (no such input any more)" for key in sorted(stale)]
        extra = {int(i) for i in node.get("outputs", {})} - set(range(len(i18n_docs.outputs(cls))))
        missing += [f"{name}.outputs.{i} (no such output any more)" for i in sorted(extra)]
    assert not missing, f"locales/{lang}/main.json lacks: " + ", ".join(missing)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_translations_are_in_the_language_and_keep_the_placeholders(lang: str) -> None:
    english = dict(all_strings(i18n_docs.english_locale()))
    translated = dict(all_strings(i18n_docs.load_locale(lang)))
    assert set(english) == set(translated), (
        f"locales/{lang}/main.json: missing {sorted(set(english) - set(translated))}, "
        f"unknown {sorted(set(translated) - set(english))}")
    for path, text in translated.items():
        assert isinstance(text, str) and text.strip(), f"{lang}{path} is empty"
        assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(english[path])), (
            f"{lang}{path}: placeholders differ from the English {english[path]!r}")
        has_words = re.search("[A-Za-z]", PLACEHOLDER.sub("", english[path]))
        is_prose = path.endswith((".display_name", ".description", ".tooltip"))
        if is_prose or (path.startswith(f".{i18n_docs.WORDS_NAMESPACE}.") and has_words):
            assert CJK.search(PLACEHOLDER.sub("", text)), f"{lang}{path} is not translated: {text!r}"


@pytest.mark.parametrize("lang", SHIPPED)
def test_no_string_uses_the_frontends_message_syntax(lang: str) -> None:
    """vue-i18n compiles these strings: '{', '}', '@' and '|' would be taken as its syntax."""
    for path, text in all_strings(i18n_docs.load_locale(lang)):
        assert not re.search(r"[@|{}]", PLACEHOLDER.sub("", text)), f"{lang}{path}: {text!r}"


def test_english_locale_and_docs_tables_are_generated_from_the_nodes() -> None:
    stale = [str(p.relative_to(i18n_docs.REPO_ROOT)) for p in i18n_docs.stale_files()]
    assert not stale, f"run .cache/venv/bin/python scripts/i18n_docs.py: stale {stale}"


def test_extension_words_are_one_per_line_and_all_in_the_english_locale() -> None:
    words = i18n_docs.extension_words()
    assert {"stopButton", "resetButton", "idle"} <= set(words)
    js = "\n".join(p.read_text(encoding="utf-8") for p in sorted(i18n_docs.EXTENSION_JS.parent.glob("*.js")))
    used = set(re.findall(r"""word\("(\w+)"|WORDS\.(\w+)|\[\w+, "(\w+)"\]""", js))
    used_keys = {key for match in used for key in match if key}
    assert used_keys <= set(words), f"used but not in WORDS: {sorted(used_keys - set(words))}"


@pytest.mark.parametrize("lang", SHIPPED)
@pytest.mark.parametrize("name", sorted(NODES))
def test_every_node_has_a_docs_page_with_its_inputs_and_outputs(name: str, lang: str) -> None:
    page = i18n_docs.doc_path(name, lang)
    assert page.is_file(), f"no docs page {page.relative_to(i18n_docs.REPO_ROOT)}"
    text = page.read_text(encoding="utf-8")
    assert "<!-- generated:inputs" in text and "<!-- generated:outputs" in text
    for key in i18n_docs.visible_inputs(NODES[name]):
        assert f"| `{key}`" in text, f"{page.name}: input {key} is not in the table"
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):  # relative to docs/, as the help panel resolves
        assert (i18n_docs.DOCS / image).is_file(), f"{page.name}: missing picture {image}"


def test_search_aliases_let_people_find_the_nodes() -> None:
    loader_aliases = NODES["BatchImageLoader"].SEARCH_ALIASES
    assert {"folder", "batch", "directory", "loop"} <= set(loader_aliases)
    for cls in NODES.values():
        assert cls.SEARCH_ALIASES and all(isinstance(a, str) and a == a.lower() for a in cls.SEARCH_ALIASES)
