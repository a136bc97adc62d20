#!/bin/sh
# The verifier of the generic sweep in tests/test_sweep.c, in the protocol of
# `distill eval --verifier-cmd`: one JSON object on stdin,
#   {"record": {..., "answer": "BLUE", ...}, "text": "<generated text>", "code": ...}
# and one verdict on stdout. A sample passes when the record's answer (an upper-case word, never
# changed by JSON escaping) occurs in the generated text.
in=$(cat)
ans=$(printf '%s' "$in" | sed -n 's/.*"answer": *"\([A-Z]*\)".*/\1/p')
text=${in#*\"text\":\"}
text=${text%\",\"code\":*}
if [ -z "$ans" ]; then
  echo '{"pass": false, "reason": "the record has no answer"}'
  exit 0
fi
case "$text" in
  *"$ans"*) echo '{"pass": true, "reason": "answer in text"}' ;;
  *) echo '{"pass": false, "reason": "answer not in text"}' ;;
esac
