"""Keep the translations and node docs true to the nodes: one source for every word about an input.

The English words live in the code: the nodes' DESCRIPTION, tooltips and OUTPUT_TOOLTIPS, and the
browser extension's WORDS table (web/batch_words.js). From them this script writes
  - locales/en/main.json (nodeDefs + the extension's words), entirely generated;
  - the input and output tables of every docs page (web/docs/<Node>.md in English, and
    web/docs/<Node>/<lang>.md from the translated tooltips in locales/<lang>/main.json).
Everything outside the generated blocks of a docs page, and locales/zh|ja, is written by hand.

    .cache/venv/bin/python scripts/i18n_docs.py           # rewrite the generated parts
    .cache/venv/bin/python scripts/i18n_docs.py --check   # exit 1 when something is stale

tests/unit/test_i18n.py runs the check, and checks that every input, output and word has a
translation in every shipped language, so a new input cannot ship untranslated.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCALES = REPO_ROOT / "locales"
DOCS = REPO_ROOT / "web" / "docs"
EXTENSION_JS = REPO_ROOT / "web" / "batch_words.js"  # the extension's words; its other modules use them
WORDS_NAMESPACE = "batchImageProcessing"  # key of the extension's words in locales/<lang>/main.json
LANGUAGES = ("en", "zh", "ja")

# Headings and small words of the generated tables, per language.
TABLE_WORDS = {
    "en": {"input": "input", "output": "output", "what": "what it does", "options": "Options",
           "default": "Default", "optional": "Optional", "sep": ", ", "colon": ": ", "stop": ". "},
    "zh": {"input": "输入", "output": "输出", "what": "说明", "options": "选项", "default": "默认",
           "optional": "可选", "sep": "、", "colon": "：", "stop": "。"},
    "ja": {"input": "入力", "output": "出力", "what": "説明", "options": "選択肢", "default": "既定値",
           "optional": "省略可", "sep": "、", "colon": "：", "stop": "。"},
}
BLOCK = re.compile(r"(<!-- generated:(inputs|outputs) [^>]*-->\n)(.*?)(<!-- /generated:\2 -->)", re.S)


def node_classes() -> dict[str, Any]:
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from packload import load_pack

    return dict(load_pack().NODE_CLASS_MAPPINGS)


def display_names() -> dict[str, str]:
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from packload import load_pack

    return dict(load_pack().NODE_DISPLAY_NAME_MAPPINGS)


def visible_inputs(cls: Any) -> dict[str, tuple[Any, dict[str, Any], bool]]:
    """name -> (type or list of options, options dict, optional?) for every input a user sees."""
    spec = cls.INPUT_TYPES()
    found = {}
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            found[name] = (entry[0], options, section == "optional")
    return found


def outputs(cls: Any) -> list[tuple[str, str]]:
    names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
    tips = getattr(cls, "OUTPUT_TOOLTIPS", None) or ("",) * len(names)
    return list(zip(names, tips, strict=True))


def english_node_def(name: str, cls: Any) -> dict[str, Any]:
    """The nodeDefs entry ComfyUI's frontend reads, built from the class itself."""
    return {
        "display_name": display_names().get(name, name),
        "description": getattr(cls, "DESCRIPTION", ""),
        "inputs": {key: {"name": key, "tooltip": opts.get("tooltip", "")}
                   for key, (_, opts, _) in visible_inputs(cls).items()},
        "outputs": {str(i): {"name": out, "tooltip": tip} for i, (out, tip) in enumerate(outputs(cls))},
    }


def extension_words() -> dict[str, str]:
    """The WORDS table of the browser extension: one `key: "English",` per line."""
    text = EXTENSION_JS.read_text(encoding="utf-8")
    match = re.search(r"^(?:export )?const WORDS = \{\n(.*?)^\};", text, re.S | re.M)
    if not match:
        raise ValueError(f"no `const WORDS = {{ ... }};` table in {EXTENSION_JS.name}")
    words = {}
    for line in match.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        entry = re.fullmatch(r'(\w+): ("(?:[^"\\]|\\.)*"),?', line)
        if not entry:
            raise ValueError(f"WORDS: write each entry as `key: \"English\",` on one line, not: {line}")
        words[entry.group(1)] = json.loads(entry.group(2))
    return words


def english_locale() -> dict[str, Any]:
    return {
        "nodeDefs": {name: english_node_def(name, cls) for name, cls in node_classes().items()},
        WORDS_NAMESPACE: extension_words(),
    }


def load_locale(lang: str) -> dict[str, Any]:
    return json.loads((LOCALES / lang / "main.json").read_text(encoding="utf-8"))


def dump(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _label(key: str, translated: str | None, lang: str) -> str:
    shown = f"`{key}`"
    if lang != "en" and translated and translated != key:
        shown += f"（{translated}）"
    return shown


def inputs_table(name: str, cls: Any, lang: str) -> str:
    words = TABLE_WORDS[lang]
    texts = load_locale(lang)["nodeDefs"].get(name, {}).get("inputs", {}) if lang != "en" else {}
    rows = [f"| {words['input']} | {words['what']} |", "|---|---|"]
    for key, (kind, opts, optional) in visible_inputs(cls).items():
        text = texts.get(key, {})
        tip = text.get("tooltip") if lang != "en" else opts.get("tooltip", "")
        extra = []
        if isinstance(kind, list):
            extra.append(words["options"] + words["colon"] + words["sep"].join(f"`{o}`" for o in kind))
        if "default" in opts and opts["default"] not in ("", None):
            default = opts["default"]
            shown = str(default).lower() if isinstance(default, bool) else str(default)
            extra.append(f"{words['default']}{words['colon']}`{shown}`")
        if optional:
            extra.append(words["optional"])
        detail = (tip or "").rstrip()
        if extra:
            joined = words["stop"].join(extra) + words["stop"].strip()
            detail = f"{detail} {joined}" if lang == "en" else f"{detail}{joined}"
        rows.append(f"| {_label(key, text.get('name'), lang)} | {_cell(detail)} |")
    return "\n".join(rows) + "\n"


def outputs_table(name: str, cls: Any, lang: str) -> str:
    words = TABLE_WORDS[lang]
    texts = load_locale(lang)["nodeDefs"].get(name, {}).get("outputs", {}) if lang != "en" else {}
    rows = [f"| {words['output']} | {words['what']} |", "|---|---|"]
    for i, (out, tip) in enumerate(outputs(cls)):
        text = texts.get(str(i), {})
        detail = text.get("tooltip") if lang != "en" else tip
        rows.append(f"| {_label(out, text.get('name'), lang)} | {_cell(detail or '')} |")
    return "\n".join(rows) + "\n"


def doc_path(name: str, lang: str) -> Path:
    return DOCS / f"{name}.md" if lang == "en" else DOCS / name / f"{lang}.md"


def render_doc(name: str, cls: Any, lang: str, text: str) -> str:
    """The docs page with its generated blocks rewritten."""
    def fill(match: re.Match[str]) -> str:
        table = inputs_table(name, cls, lang) if match.group(2) == "inputs" else outputs_table(name, cls, lang)
        return match.group(1) + table + match.group(4)

    return BLOCK.sub(fill, text)


def expected_files() -> dict[Path, str]:
    """Every generated file (or page with generated blocks) and the text it should have."""
    files = {LOCALES / "en" / "main.json": dump(english_locale())}
    for name, cls in node_classes().items():
        for lang in LANGUAGES:
            path = doc_path(name, lang)
            if path.exists():  # a missing page is written by hand (tests/unit/test_i18n.py asks for it)
                files[path] = render_doc(name, cls, lang, path.read_text(encoding="utf-8"))
    return files


def stale_files() -> list[Path]:
    return [path for path, text in expected_files().items()
            if not path.exists() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(REPO_ROOT)} (run scripts/i18n_docs.py)")
        return 1 if stale else 0
    for path, text in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
