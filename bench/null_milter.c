/* A do-nothing milter against Debian's libmilter: answers RCPT and DATA with CONTINUE.
 * It negotiates the same stages as nullmx-milter (envrcpt and data, everything else off),
 * so it measures what the milter protocol itself costs inside the MTA.
 * Usage: null_milter SOCKET   (inet:PORT@127.0.0.1 or unix:/path)
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <libmilter/mfapi.h>

static sfsistat on_rcpt(SMFICTX *ctx, char **argv) {
    (void)ctx;
    (void)argv;
    return SMFIS_CONTINUE;
}

static sfsistat on_data(SMFICTX *ctx) {
    (void)ctx;
    return SMFIS_CONTINUE;
}

static struct smfiDesc description = {
    .xxfi_name = "null-milter",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = 0,
    .xxfi_envrcpt = on_rcpt,
    .xxfi_data = on_data,
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
        return 2;
    }
    /* Postfix (user postfix) must be able to connect to a unix socket. */
    umask(0);
    if (smfi_setconn(argv[1]) == MI_FAILURE || smfi_register(description) == MI_FAILURE ||
        smfi_opensocket(1) == MI_FAILURE) {
        fprintf(stderr, "null_milter: cannot listen on %s\n", argv[1]);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
