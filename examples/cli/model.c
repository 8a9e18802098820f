/* Which bundle a command uses: --model, or the embedded tiny test model. */
#include "cli.h"

#include <stdlib.h>
#include <unistd.h>

int is_dir_with_manifest(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/bundle.json", dir);
    return dir[0] && access(p, R_OK) == 0;
}

/* The tiny bundle: $NEXTGPT_TINY_MODEL, the build tree, then the install prefix. */
const char *tiny_model(void)
{
    const char *env = getenv("NEXTGPT_TINY_MODEL");
    if (env && is_dir_with_manifest(env)) return env;
    if (is_dir_with_manifest(NGPT_TINY_BUILD_DIR)) return NGPT_TINY_BUILD_DIR;
    if (is_dir_with_manifest(NGPT_TINY_INSTALL_DIR)) return NGPT_TINY_INSTALL_DIR;
    return NULL;
}

/* --model, or the embedded tiny bundle (with the random-weights notice); NULL (message printed)
 * when there is none. */
const char *pick_model(const opts *o)
{
    if (o->model) return o->model;
    const char *model = tiny_model();
    if (!model) {
        fprintf(stderr, "nextgpt: no --model given and the embedded tiny model was not found (looked in "
                        "$NEXTGPT_TINY_MODEL, %s, %s)\n", NGPT_TINY_BUILD_DIR, NGPT_TINY_INSTALL_DIR);
        return NULL;
    }
    fprintf(stderr, "nextgpt: no --model given: using the embedded tiny test model (%s).\n"
                    "nextgpt: NOTE: it has RANDOM weights; its answers and media are noise. Pass --model DIR "
                    "for a real NExT-GPT bundle.\n", model);
    return model;
}
