package dev.reactorubd.targets.nbd;

/**
 * What the handshake learnt of an export.
 *
 * @param size         bytes
 * @param flags        transmission flags ({@code NBD_FLAG_*})
 * @param minBlock     minimum block size (1 when the server stated none)
 * @param prefBlock    preferred block size (4096 when the server stated none)
 * @param maxBlock     maximum block size the server accepts in one request (0 when it stated none)
 * @param viaGo        whether the export was chosen with NBD_OPT_GO (else with NBD_OPT_EXPORT_NAME)
 */
record ExportInfo(long size, int flags, int minBlock, int prefBlock, int maxBlock, boolean viaGo) {
    boolean has(int flag) {
        return (flags & flag) != 0;
    }

    /** The largest READ or WRITE payload to send in one request: the server's maximum, at most 32 MiB. */
    int maxPayload() {
        if (maxBlock == 0) {
            return NbdProtocol.DEFAULT_MAX_PAYLOAD;
        }
        int max = (int) Math.min(Integer.toUnsignedLong(maxBlock), NbdProtocol.DEFAULT_MAX_PAYLOAD);
        // Keep chunks whole multiples of the minimum block size, so that a split request stays aligned.
        return minBlock > 1 && max >= minBlock ? max - max % minBlock : max;
    }

    @Override
    public String toString() {
        return size + " bytes, flags " + NbdProtocol.flagNames(flags) + ", block sizes " + minBlock + "/" + prefBlock
                + "/" + (maxBlock == 0 ? "-" : Integer.toUnsignedString(maxBlock)) + (viaGo ? "" : " (EXPORT_NAME)");
    }
}
