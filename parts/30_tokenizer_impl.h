/* IMPLEMENTATION: tokenizer (owner: tokenizer issue) */
