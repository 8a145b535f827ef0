package dev.reactorubd.sys;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.reactorubd.ctrl.UblkDevState;
import dev.reactorubd.ctrl.UblkFeature;
import org.junit.jupiter.api.Test;

/**
 * Pins every size, offset and encoded opcode to the values of {@code include/uapi/linux/ublk_cmd.h}, computed
 * independently (by hand and with a C compiler) so that a wrong layout cannot pass.
 */
class KernelAbiTest {

    @Test
    void controlCommandOpcodesMatchTheHeader() {
        assertEquals(0x80207501, UblkCtrlCmd.GET_QUEUE_AFFINITY);
        assertEquals(0x80207502, UblkCtrlCmd.GET_DEV_INFO);
        assertEquals(0xc0207504, UblkCtrlCmd.ADD_DEV);
        assertEquals(0xc0207505, UblkCtrlCmd.DEL_DEV);
        assertEquals(0xc0207506, UblkCtrlCmd.START_DEV);
        assertEquals(0xc0207507, UblkCtrlCmd.STOP_DEV);
        assertEquals(0xc0207508, UblkCtrlCmd.SET_PARAMS);
        assertEquals(0x80207509, UblkCtrlCmd.GET_PARAMS);
        assertEquals(0xc0207510, UblkCtrlCmd.START_USER_RECOVERY);
        assertEquals(0xc0207511, UblkCtrlCmd.END_USER_RECOVERY);
        assertEquals(0x80207512, UblkCtrlCmd.GET_DEV_INFO2);
        assertEquals(0x80207513, UblkCtrlCmd.GET_FEATURES);
        assertEquals(0x80207514, UblkCtrlCmd.DEL_DEV_ASYNC);
        assertEquals(0xc0207515, UblkCtrlCmd.UPDATE_SIZE);
        assertEquals(0xc0207516, UblkCtrlCmd.QUIESCE_DEV);
        assertEquals(0xc0207517, UblkCtrlCmd.TRY_STOP_DEV);
    }

    @Test
    void ioCommandOpcodesMatchTheHeader() {
        assertEquals(0xc0107520, UblkIo.FETCH_REQ);
        assertEquals(0xc0107521, UblkIo.COMMIT_AND_FETCH_REQ);
        assertEquals(0xc0107522, UblkIo.NEED_GET_DATA);
        assertEquals(0xc0107523, UblkIo.REGISTER_IO_BUF);
        assertEquals(0xc0107524, UblkIo.UNREGISTER_IO_BUF);
        assertEquals(0xc0107525, UblkIo.PREP_IO_CMDS);
        assertEquals(0xc0107526, UblkIo.COMMIT_IO_CMDS);
        assertEquals(0xc0107527, UblkIo.FETCH_IO_CMDS);
        assertEquals(-19, UblkIo.RES_ABORT);
    }

    @Test
    void ctrlCmdLayout() {
        assertEquals(32, UblkCtrlCmd.SIZE);
        assertEquals(0, UblkCtrlCmd.offsetOf("dev_id"));
        assertEquals(4, UblkCtrlCmd.offsetOf("queue_id"));
        assertEquals(6, UblkCtrlCmd.offsetOf("len"));
        assertEquals(8, UblkCtrlCmd.offsetOf("addr"));
        assertEquals(16, UblkCtrlCmd.offsetOf("data"));
        assertEquals(24, UblkCtrlCmd.offsetOf("dev_path_len"));
        assertEquals(26, UblkCtrlCmd.offsetOf("pad"));
        assertEquals(28, UblkCtrlCmd.offsetOf("reserved"));
    }

    @Test
    void devInfoLayout() {
        assertEquals(64, UblkDevInfo.SIZE);
        assertEquals(0, UblkDevInfo.offsetOf("nr_hw_queues"));
        assertEquals(2, UblkDevInfo.offsetOf("queue_depth"));
        assertEquals(4, UblkDevInfo.offsetOf("state"));
        assertEquals(8, UblkDevInfo.offsetOf("max_io_buf_bytes"));
        assertEquals(12, UblkDevInfo.offsetOf("dev_id"));
        assertEquals(16, UblkDevInfo.offsetOf("ublksrv_pid"));
        assertEquals(24, UblkDevInfo.offsetOf("flags"));
        assertEquals(32, UblkDevInfo.offsetOf("ublksrv_flags"));
        assertEquals(40, UblkDevInfo.offsetOf("owner_uid"));
        assertEquals(44, UblkDevInfo.offsetOf("owner_gid"));
        assertEquals(48, UblkDevInfo.offsetOf("reserved1"));
        assertEquals(56, UblkDevInfo.offsetOf("reserved2"));
    }

    @Test
    void paramsLayout() {
        // offsetof() values printed by gcc for the header's struct ublk_params.
        assertEquals(152, UblkParams.SIZE);
        assertEquals(0, UblkParams.offsetOf("len"));
        assertEquals(4, UblkParams.offsetOf("types"));
        assertEquals(8, UblkParams.offsetOf("basic"));
        assertEquals(40, UblkParams.offsetOf("discard"));
        assertEquals(60, UblkParams.offsetOf("devt"));
        assertEquals(76, UblkParams.offsetOf("zoned"));
        assertEquals(108, UblkParams.offsetOf("dma"));
        assertEquals(120, UblkParams.offsetOf("seg"));
        assertEquals(136, UblkParams.offsetOf("integrity"));
        assertEquals(32, UblkParams.BASIC.byteSize());
        assertEquals(20, UblkParams.DISCARD.byteSize());
        assertEquals(16, UblkParams.DEVT.byteSize());
        assertEquals(32, UblkParams.ZONED.byteSize());
        assertEquals(8, UblkParams.DMA_ALIGN.byteSize());
        assertEquals(16, UblkParams.SEGMENT.byteSize());
        assertEquals(16, UblkParams.INTEGRITY.byteSize());
        assertEquals(8 + 8, UblkParams.offsetOf("basic", "max_sectors"));
        assertEquals(8 + 12, UblkParams.offsetOf("basic", "chunk_sectors"));
        assertEquals(8 + 16, UblkParams.offsetOf("basic", "dev_sectors"));
        assertEquals(8 + 24, UblkParams.offsetOf("basic", "virt_boundary_mask"));
        assertEquals(40 + 16, UblkParams.offsetOf("discard", "max_discard_segments"));
        assertEquals(120 + 8, UblkParams.offsetOf("seg", "max_segment_size"));
        assertEquals(1, UblkParams.TYPE_BASIC);
        assertEquals(2, UblkParams.TYPE_DISCARD);
        assertEquals(4, UblkParams.TYPE_DEVT);
        assertEquals(8, UblkParams.TYPE_ZONED);
        assertEquals(16, UblkParams.TYPE_DMA_ALIGN);
        assertEquals(32, UblkParams.TYPE_SEGMENT);
        assertEquals(64, UblkParams.TYPE_INTEGRITY);
        assertEquals(1, UblkParams.ATTR_READ_ONLY);
        assertEquals(2, UblkParams.ATTR_ROTATIONAL);
        assertEquals(4, UblkParams.ATTR_VOLATILE_CACHE);
        assertEquals(8, UblkParams.ATTR_FUA);
    }

    @Test
    void ioStructsLayout() {
        assertEquals(16, UblkIo.CMD_SIZE);
        assertEquals(0, UblkIo.cmdOffsetOf("q_id"));
        assertEquals(2, UblkIo.cmdOffsetOf("tag"));
        assertEquals(4, UblkIo.cmdOffsetOf("result"));
        assertEquals(8, UblkIo.cmdOffsetOf("addr"));
        assertEquals(24, UblkIo.DESC_SIZE);
        assertEquals(0, UblkIo.descOffsetOf("op_flags"));
        assertEquals(4, UblkIo.descOffsetOf("nr_sectors"));
        assertEquals(8, UblkIo.descOffsetOf("start_sector"));
        assertEquals(16, UblkIo.descOffsetOf("addr"));
    }

    @Test
    void ioOpsFlagsAndStates() {
        assertEquals(0, UblkIo.OP_READ);
        assertEquals(1, UblkIo.OP_WRITE);
        assertEquals(2, UblkIo.OP_FLUSH);
        assertEquals(3, UblkIo.OP_DISCARD);
        assertEquals(4, UblkIo.OP_WRITE_SAME);
        assertEquals(5, UblkIo.OP_WRITE_ZEROES);
        assertEquals(10, UblkIo.OP_ZONE_OPEN);
        assertEquals(13, UblkIo.OP_ZONE_APPEND);
        assertEquals(15, UblkIo.OP_ZONE_RESET);
        assertEquals(18, UblkIo.OP_REPORT_ZONES);
        assertEquals(0x2000, UblkIo.F_FUA);
        assertEquals(0x8000, UblkIo.F_NOUNMAP);
        assertEquals(0x100, UblkIo.F_FAILFAST_DEV);
        assertEquals(0, UblkDevState.DEAD.value());
        assertEquals(1, UblkDevState.LIVE.value());
        assertEquals(2, UblkDevState.QUIESCED.value());
        assertEquals(3, UblkDevState.FAIL_IO.value());
        assertEquals(UblkDevState.UNKNOWN, UblkDevState.of(9));
    }

    @Test
    void featureBitsMatchTheHeader() {
        assertEquals(1L, UblkFeature.SUPPORT_ZERO_COPY.mask());
        assertEquals(1L << 7, UblkFeature.USER_COPY.mask());
        assertEquals(1L << 8, UblkFeature.ZONED.mask());
        assertEquals(1L << 9, UblkFeature.USER_RECOVERY_FAIL_IO.mask());
        assertEquals(1L << 13, UblkFeature.PER_IO_DAEMON.mask());
        assertEquals(1L << 19, UblkFeature.SHMEM_ZC.mask());
        // What GET_FEATURES answers on Linux 6.12: bits 1 to 8.
        assertEquals(0x1FEL, UblkFeature.toMask(UblkFeature.fromMask(0x1FE)));
        assertEquals(8, UblkFeature.fromMask(0x1FE).size());
    }

    @Test
    void userCopyOffsetsAndDescriptorArea() {
        assertEquals(0x80000000L, UblkIo.userCopyOffset(0, 0, 0));
        assertEquals(0x80000000L + (3L << 41) + (5L << 25) + 4096, UblkIo.userCopyOffset(3, 5, 4096));
        assertEquals(1L << 25, UblkIo.MAX_IO_BYTES);
        // round_up(4096 * 24, 4096) = 98304 per queue.
        assertEquals(2 * 98304L, UblkIo.descAreaOffset(2, 4096));
        assertEquals(4096, UblkIo.descAreaLength(128, 4096));
        assertEquals(8192, UblkIo.descAreaLength(171, 4096));
        assertEquals(0x0000_0005_0003_0001L & 0xFFFFFFFFL, UblkIo.packCmd(1, 3, 5) & 0xFFFFFFFFL);
        assertEquals(0xFFFF_FFFB_0003_0001L, UblkIo.packCmd(1, 3, -5));
    }
}
