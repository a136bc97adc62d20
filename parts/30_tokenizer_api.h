/* PUBLIC API: tokenizer (owner: tokenizer issue) */
