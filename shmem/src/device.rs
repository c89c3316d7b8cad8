//! A PCI device's memory BAR as the segment's backing store: the sysfs
//! resource file (`/sys/bus/pci/devices/DDDD:BB:DD.F/resourceN`) of an
//! `ivshmem-plain` device, whose BAR 2 is one host file that QEMU shares
//! between every VM of a cluster. Such a file maps like any other, but it
//! cannot be read with `pread` nor resized, and the device's memory
//! decoding must be on before a mapping reaches it.
//! It knows sysfs paths and the device's enable switch; it must not know
//! the segment's layout.
use std::fs::{self, File};
use std::io;
use std::path::Path;

use memmap2::MmapRaw;

/// Whether `path` names a PCI resource file in sysfs.
pub(crate) fn is_pci_resource(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    path.starts_with("/sys")
        && name
            .strip_prefix("resource")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// For a PCI resource file, turns the device's memory decoding on if it is
/// off (its sysfs `enable` file reads 0); nothing for any other path. A
/// device that no driver claims, like an ivshmem-plain device, starts
/// disabled; writing the switch needs CAP_SYS_ADMIN, so a box without it
/// relies on its boot (the appliance image's setup unit) having done it.
pub(crate) fn enable_if_bar(resource: &Path) -> io::Result<()> {
    if !is_pci_resource(resource) {
        return Ok(());
    }
    let switch = resource.with_file_name("enable");
    let on = fs::read_to_string(&switch)?;
    if on.trim() == "0" {
        fs::write(&switch, "1")?;
    }
    Ok(())
}

/// Fills `buf` from the start of the BAR, through a mapping: sysfs
/// resource files support no `pread`.
pub(crate) fn read_bar(file: &File, buf: &mut [u8]) -> io::Result<()> {
    let map = MmapRaw::map_raw(file)?;
    if map.len() < buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the BAR is {} bytes, shorter than {}", map.len(), buf.len()),
        ));
    }
    for (i, b) in buf.iter_mut().enumerate() {
        // SAFETY: i < buf.len() <= map.len(); volatile because another VM
        // may write the same memory.
        *b = unsafe { map.as_ptr().add(i).read_volatile() };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sysfs_resource_files_are_pci_resources() {
        assert!(is_pci_resource(Path::new(
            "/sys/bus/pci/devices/0000:00:05.0/resource2"
        )));
        assert!(!is_pci_resource(Path::new(
            "/sys/bus/pci/devices/0000:00:05.0/resource"
        )));
        assert!(!is_pci_resource(Path::new(
            "/sys/bus/pci/devices/0000:00:05.0/resource2_wc"
        )));
        assert!(!is_pci_resource(Path::new("/dev/shm/resource2")));
        assert!(!is_pci_resource(Path::new("/dev/shm/baton.seg")));
    }

    #[test]
    fn other_paths_need_no_enabling() {
        assert!(enable_if_bar(Path::new("/dev/shm/no-such-segment")).is_ok());
    }

    #[test]
    fn enabling_a_device_that_does_not_exist_fails() {
        assert!(enable_if_bar(Path::new("/sys/bus/pci/devices/ffff:ff:1f.7/resource2")).is_err());
    }
}
