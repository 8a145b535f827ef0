/**
 * The control plane: {@link dev.reactorubd.ctrl.UbdControl} sends ublk's control commands (add, set parameters,
 * start, stop, delete, recover, inspect) through {@code /dev/ublk-control}, each as a {@code Mono} bounded by a
 * timeout; {@link dev.reactorubd.ctrl.DeviceSpec} describes a device and is validated before anything reaches the
 * kernel; {@link dev.reactorubd.ctrl.DeviceInfo} and {@link dev.reactorubd.ctrl.DeviceParams} are what the kernel
 * answers.
 */
package dev.reactorubd.ctrl;
