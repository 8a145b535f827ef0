package dev.reactorubd.ctrl;

import dev.reactorubd.sys.UblkDevInfo;
import java.lang.foreign.MemorySegment;
import java.util.Set;

/**
 * What the kernel says of a device ({@code ublksrv_ctrl_dev_info}): after ADD_DEV the negotiated values, which
 * may differ from the request (the kernel lowers the queue count to the CPU count, and sets features of its own).
 *
 * @param id            the device id: {@code /dev/ublkcN} and {@code /dev/ublkbN}
 * @param queues        hardware queues
 * @param depth         tags per queue
 * @param state         DEAD, LIVE, QUIESCED or FAIL_IO
 * @param maxIoBytes    largest request buffer
 * @param serverPid     pid of the process that started it, or -1 / 0
 * @param featureMask   the raw feature bits in force
 * @param ownerUid      uid of the creator
 * @param ownerGid      gid of the creator
 */
public record DeviceInfo(
        int id,
        int queues,
        int depth,
        UblkDevState state,
        long maxIoBytes,
        int serverPid,
        long featureMask,
        int ownerUid,
        int ownerGid) {

    /**
     * Reads a {@code ublksrv_ctrl_dev_info}.
     *
     * @param s the struct's memory
     * @return the device's info
     */
    public static DeviceInfo read(MemorySegment s) {
        return new DeviceInfo(
                UblkDevInfo.devId(s),
                UblkDevInfo.nrHwQueues(s),
                UblkDevInfo.queueDepth(s),
                UblkDevState.of(UblkDevInfo.state(s)),
                UblkDevInfo.maxIoBufBytes(s),
                UblkDevInfo.ublksrvPid(s),
                UblkDevInfo.flags(s),
                UblkDevInfo.ownerUid(s),
                UblkDevInfo.ownerGid(s));
    }

    /** {@return the features in force} */
    public Set<UblkFeature> features() {
        return UblkFeature.fromMask(featureMask);
    }

    /**
     * Whether a feature is in force on this device.
     *
     * @param f the feature
     * @return whether {@code f} is in force
     */
    public boolean has(UblkFeature f) {
        return (featureMask & f.mask()) != 0;
    }

    /** {@return {@code /dev/ublkcN}, the character device its server opens} */
    public String charDevicePath() {
        return charDevicePath(id);
    }

    /** {@return {@code /dev/ublkbN}, the block device the kernel adds on START_DEV} */
    public String blockDevicePath() {
        return blockDevicePath(id);
    }

    /**
     * The path of a device's char device, which its server opens.
     *
     * @param id the device id
     * @return {@code /dev/ublkcN} for {@code id} N
     */
    public static String charDevicePath(int id) {
        return "/dev/ublkc" + id;
    }

    /**
     * The path of a device's block device, present while the device is started.
     *
     * @param id the device id
     * @return {@code /dev/ublkbN} for {@code id} N
     */
    public static String blockDevicePath(int id) {
        return "/dev/ublkb" + id;
    }
}
