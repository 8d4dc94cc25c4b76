#!/usr/bin/env python3
"""Renders a model folder's chat template the way transformers' apply_chat_template does
(utils/chat_template_utils.py: an ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks
and loopcontrols; raise_exception, strftime_now and tojson; special tokens from
tokenizer_config.json), with only Debian's python3-jinja2.

stdin:  {"dir": FOLDER, "conversations": [{"messages": [...], "add_generation_prompt": bool}, ...]}
stdout: a JSON list of the rendered strings.
"""
import json
import os
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


def token_text(t):
    return t["content"] if isinstance(t, dict) else t


def main():
    request = json.load(sys.stdin)
    with open(os.path.join(request["dir"], "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    template = env.from_string(config["chat_template"])
    special = {k: token_text(config[k]) for k in ("bos_token", "eos_token", "unk_token", "pad_token") if config.get(k) is not None}
    out = [
        template.render(messages=c["messages"], add_generation_prompt=c["add_generation_prompt"], **special)
        for c in request["conversations"]
    ]
    json.dump(out, sys.stdout)


main()
