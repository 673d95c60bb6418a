// Dumps the final-position logits of a prompt file (byte for byte, control tokens parsed, no BOS
// unless the model asks) and a greedy continuation, with llama.cpp.
#include "llama.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: dump MODEL PROMPT_FILE OUT_F32 [N_GREEDY]\n"); return 2; }
  int ngreedy = argc > 4 ? atoi(argv[4]) : 32;
  FILE *f = fopen(argv[2], "rb");
  if (!f) { fprintf(stderr, "cannot read %s\n", argv[2]); return 1; }
  fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
  char *text = malloc(n + 1); fread(text, 1, n, f); text[n] = 0; fclose(f);
  llama_backend_init();
  struct llama_model_params mp = llama_model_default_params();
  struct llama_model *model = llama_model_load_from_file(argv[1], mp);
  if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
  const struct llama_vocab *vocab = llama_model_get_vocab(model);
  struct llama_context_params cp = llama_context_default_params();
  cp.n_ctx = 2048; cp.n_batch = 2048; cp.n_threads = 2; cp.n_threads_batch = 2;
  struct llama_context *ctx = llama_init_from_model(model, cp);
  llama_token toks[4096];
  int nt = llama_tokenize(vocab, text, (int)n, toks, 4096, true, true);
  if (nt < 0) { fprintf(stderr, "prompt longer than 4096 tokens\n"); return 1; }
  printf("{\"prompt_ids\": [");
  for (int i = 0; i < nt; i++) printf("%s%d", i ? ", " : "", toks[i]);
  printf("], ");
  if (llama_decode(ctx, llama_batch_get_one(toks, nt))) { fprintf(stderr, "decode failed\n"); return 1; }
  int V = llama_vocab_n_tokens(vocab);
  float *lg = llama_get_logits_ith(ctx, -1);
  FILE *o = fopen(argv[3], "wb");
  if (!o) { fprintf(stderr, "cannot write %s\n", argv[3]); return 1; }
  fwrite(lg, 4, V, o); fclose(o);
  printf("\"greedy\": [");
  for (int g = 0; g < ngreedy; g++) {
    float *l = llama_get_logits_ith(ctx, -1); int best = 0;
    for (int i = 1; i < V; i++) if (l[i] > l[best]) best = i;
    printf("%s%d", g ? ", " : "", best);
    if (llama_vocab_is_eog(vocab, best)) break;
    llama_token t = best;
    if (llama_decode(ctx, llama_batch_get_one(&t, 1))) return 1;
  }
  printf("]}\n");
  return 0;
}
