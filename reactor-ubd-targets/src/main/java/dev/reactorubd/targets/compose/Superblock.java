package dev.reactorubd.targets.compose;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.UUID;
import java.util.zip.CRC32C;

/**
 * One replica's superblock: who it is (mirror id, slot), how current it is (the event counter) and what its mirror
 * looked like at that event (every slot's role), in a {@value #BYTES}-byte block, little-endian, ending with a CRC32C.
 * Two copies are kept at the start of each replica ({@link #COPY_OFFSETS}); docs/mirror.md gives the layout.
 *
 * @param mirrorId    the mirror's id, the same on every replica
 * @param slot        this replica's index in the mirror
 * @param events      bumped on every change of membership or health, and at open and clean close
 * @param regionBytes the write-intent bitmap's (and the resync's) unit
 * @param clean       the mirror was closed cleanly at this event (no write in flight, bitmap cleared where it could)
 * @param dataOffset  where the device's byte 0 is on the replica
 * @param dataSize    the device's size
 * @param bitmapBytes the bytes reserved for the bitmap at {@link #BITMAP_OFFSET}
 * @param roles       every slot's role at this event, one of the {@code ROLE_} constants
 * @param members     every slot's member id at this event: a random id given to the replica that took the slot (at
 *                    creation, a full sync at assembly, or a replace), so that a replica whose slot was given to
 *                    another one is known when it comes back; 0 where none was recorded (superblocks written before
 *                    member ids)
 */
record Superblock(
        UUID mirrorId,
        int slot,
        long events,
        int regionBytes,
        boolean clean,
        long dataOffset,
        long dataSize,
        long bitmapBytes,
        byte[] roles,
        long[] members) {
    static final int BYTES = 4096;
    static final long[] COPY_OFFSETS = {0, BYTES};
    static final long BITMAP_OFFSET = 2L * BYTES;
    static final int VERSION = 1;
    static final byte[] MAGIC = "UBDMIRR\0".getBytes(StandardCharsets.US_ASCII);
    /** In sync at this event. */
    static final byte ROLE_ACTIVE = 0;
    /** Failed: missed writes since, all recorded in the bitmap of the active replicas. */
    static final byte ROLE_FAILED = 1;
    /** Being resynced from the bitmap: gets writes, is not current yet. */
    static final byte ROLE_RESYNCING = 2;
    /** Needs (or is getting) a full copy: its bitmap tells nothing (a blank replica, a flush that failed on it). */
    static final byte ROLE_FULL = 3;

    private static final int ROLES_AT = 128;
    private static final int MEMBERS_AT = 256;
    private static final int CRC_AT = BYTES - 4;
    static final int MAX_SLOTS = 64;

    /** The outcome of decoding one copy. */
    sealed interface Decoded {}

    /** Every byte is zero: never written. */
    record Blank() implements Decoded {}

    /** Not a superblock, or a damaged one: {@code why} says which. */
    record Bad(String why) implements Decoded {}

    /** A valid superblock. */
    record Good(Superblock sb) implements Decoded {}

    Superblock {
        roles = roles.clone();
        members = members.clone();
        if (members.length != roles.length) {
            throw new IllegalArgumentException(members.length + " member ids for " + roles.length + " slots");
        }
    }

    @Override
    public byte[] roles() {
        return roles.clone();
    }

    @Override
    public long[] members() {
        return members.clone();
    }

    /** {@return slot {@code s}'s member id at this event (0: not recorded)} */
    long member(int s) {
        return members[s];
    }

    byte role(int s) {
        return roles[s];
    }

    int count() {
        return roles.length;
    }

    Superblock withEvents(long e, boolean isClean, byte[] newRoles, long[] newMembers, int forSlot) {
        return new Superblock(
                mirrorId, forSlot, e, regionBytes, isClean, dataOffset, dataSize, bitmapBytes, newRoles, newMembers);
    }

    /** The {@value #BYTES} bytes written to disk. */
    byte[] encode() {
        ByteBuffer b = ByteBuffer.allocate(BYTES).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC);
        b.putInt(VERSION);
        b.putInt(BYTES);
        b.putLong(mirrorId.getMostSignificantBits());
        b.putLong(mirrorId.getLeastSignificantBits());
        b.putLong(0); // reserved
        b.putInt(slot);
        b.putInt(roles.length);
        b.putLong(events);
        b.putInt(regionBytes);
        b.putInt(clean ? 1 : 0);
        b.putLong(dataOffset);
        b.putLong(dataSize);
        b.putLong(BITMAP_OFFSET);
        b.putLong(bitmapBytes);
        b.position(ROLES_AT);
        b.put(roles);
        b.position(MEMBERS_AT);
        for (long m : members) {
            b.putLong(m);
        }
        byte[] out = b.array();
        CRC32C crc = new CRC32C();
        crc.update(out, 0, CRC_AT);
        ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN).putInt(CRC_AT, (int) crc.getValue());
        return out;
    }

    /** Decodes one copy; never throws. */
    static Decoded decode(byte[] raw) {
        if (raw.length != BYTES) {
            return new Bad("read " + raw.length + " bytes of " + BYTES);
        }
        boolean zero = true;
        for (byte x : raw) {
            if (x != 0) {
                zero = false;
                break;
            }
        }
        if (zero) {
            return new Blank();
        }
        if (!Arrays.equals(raw, 0, MAGIC.length, MAGIC, 0, MAGIC.length)) {
            return new Bad("no mirror superblock magic (the replica holds other data)");
        }
        ByteBuffer b = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        CRC32C crc = new CRC32C();
        crc.update(raw, 0, CRC_AT);
        if (b.getInt(CRC_AT) != (int) crc.getValue()) {
            return new Bad("bad checksum (a torn or damaged superblock)");
        }
        int version = b.getInt(8);
        if (version != VERSION) {
            return new Bad("superblock version " + version + ", this build reads version " + VERSION);
        }
        UUID id = new UUID(b.getLong(16), b.getLong(24));
        int slot = b.getInt(40);
        int count = b.getInt(44);
        long events = b.getLong(48);
        int region = b.getInt(56);
        boolean clean = (b.getInt(60) & 1) != 0;
        long dataOffset = b.getLong(64);
        long dataSize = b.getLong(72);
        long bitmapAt = b.getLong(80);
        long bitmapBytes = b.getLong(88);
        if (count < 1
                || count > MAX_SLOTS
                || slot < 0
                || slot >= count
                || region < 512
                || region % 512 != 0
                || bitmapAt != BITMAP_OFFSET
                || dataSize <= 0
                || dataOffset < BITMAP_OFFSET + bitmapBytes
                || bitmapBytes * 8 < (dataSize + region - 1) / region) {
            return new Bad("inconsistent fields (slot " + slot + " of " + count + ", region " + region + ", data "
                    + dataOffset + "+" + dataSize + ", bitmap " + bitmapBytes + " bytes)");
        }
        byte[] roles = Arrays.copyOfRange(raw, ROLES_AT, ROLES_AT + count);
        for (byte r : roles) {
            if (r < ROLE_ACTIVE || r > ROLE_FULL) {
                return new Bad("unknown role " + r);
            }
        }
        long[] members = new long[count];
        for (int i = 0; i < count; i++) {
            members[i] = b.getLong(MEMBERS_AT + 8 * i);
        }
        return new Good(
                new Superblock(id, slot, events, region, clean, dataOffset, dataSize, bitmapBytes, roles, members));
    }

    static String roleName(byte role) {
        return switch (role) {
            case ROLE_ACTIVE -> "active";
            case ROLE_FAILED -> "failed";
            case ROLE_RESYNCING -> "resyncing";
            default -> "needs a full sync";
        };
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Superblock s && Arrays.equals(encode(), s.encode());
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(encode());
    }

    @Override
    public String toString() {
        StringBuilder r = new StringBuilder();
        for (byte x : roles) {
            r.append(r.isEmpty() ? "" : ",").append(roleName(x));
        }
        return "superblock(mirror " + mirrorId + ", slot " + slot + "/" + roles.length + ", events " + events
                + (clean ? ", clean" : "") + ", roles [" + r + "])";
    }
}
