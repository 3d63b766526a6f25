//! Which device a trial runs on, chosen by `SWEEP_DEVICE` (`cpu`, `cuda` or `auto`).
//!
//! The agent narrows the visible GPUs with `CUDA_VISIBLE_DEVICES`, so "cuda" always means device 0.

use crate::error::TrialError;
use tch::Device;

pub const DEVICE_ENV: &str = "SWEEP_DEVICE";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    Auto,
}

impl DeviceChoice {
    /// An unset or empty variable means `auto`.
    pub fn parse(value: Option<&str>) -> Result<DeviceChoice, TrialError> {
        match value.map(str::trim) {
            None | Some("") | Some("auto") => Ok(DeviceChoice::Auto),
            Some("cpu") => Ok(DeviceChoice::Cpu),
            Some("cuda") => Ok(DeviceChoice::Cuda),
            Some(other) => {
                Err(TrialError::bad_config(format!("{DEVICE_ENV}: expected cpu, cuda or auto, got \"{other}\"")))
            }
        }
    }

    /// The value that names a resolved `device` (`cuda` or `cpu`), for a child process that must
    /// run on the same one.
    pub fn name_of(device: Device) -> &'static str {
        if device.is_cuda() {
            "cuda"
        } else {
            "cpu"
        }
    }

    pub fn resolve(self) -> Result<Device, TrialError> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            // Not a configuration error: the same trial may run on a node that has a GPU.
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Cuda => {
                Err(TrialError::Other(anyhow::anyhow!("{DEVICE_ENV}=cuda but libtorch sees no CUDA device")))
            }
        }
    }
}

/// The device named by the environment.
pub fn from_env() -> Result<Device, TrialError> {
    let value = std::env::var(DEVICE_ENV).ok();
    DeviceChoice::parse(value.as_deref())?.resolve()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_choices() {
        assert_eq!(DeviceChoice::parse(None).unwrap(), DeviceChoice::Auto);
        assert_eq!(DeviceChoice::parse(Some("cpu")).unwrap(), DeviceChoice::Cpu);
        assert_eq!(DeviceChoice::parse(Some("cuda")).unwrap(), DeviceChoice::Cuda);
        let err = DeviceChoice::parse(Some("tpu")).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().contains("SWEEP_DEVICE"));
        assert_eq!(DeviceChoice::Cpu.resolve().unwrap(), Device::Cpu);
        for device in [Device::Cpu, Device::Cuda(0)] {
            let named = DeviceChoice::parse(Some(DeviceChoice::name_of(device))).unwrap();
            assert_eq!(named, if device.is_cuda() { DeviceChoice::Cuda } else { DeviceChoice::Cpu });
        }
    }
}
