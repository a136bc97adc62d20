/* ===================================================================================== */
/* PUBLIC API: trainer, distillation losses, checkpoints, interop  (owner: trainer issue; */
/* the declarations here are the contract other parts code against.)                      */
/* ===================================================================================== */

/* Load any model file the library reads, format detected from the content: the library's own
   checkpoint, safetensors (+ config.json beside it), or a llama2.c .bin. The model is created
   with the given capacity. If tok_out is non-NULL and the format carries or implies a tokenizer
   (e.g. tokenizer.bin / tokenizer.json next to the model), it is loaded too, else *tok_out = NULL. */
DISTILL_API distill_model *distill_model_load(const char *path, int max_batch, int max_seq,
                                              distill_tokenizer **tok_out, distill_error *err);
