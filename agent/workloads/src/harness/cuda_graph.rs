//! CUDA graphs for the training step (the C++ shim `csrc/cuda_graph.cpp` over libtorch's
//! `at::cuda::CUDAGraph`). A step at batch 128 is launch-bound: capturing forward, backward and
//! the optimizer update once and replaying them launches the step's hundreds of kernels as one.
//!
//! What a captured step needs, and the loops provide: inputs copied into static buffers, gradients
//! zeroed in place, rates and step counts on the device (`Optimizer::graph_step`), nothing read
//! back to the host. A graph is captured after an eager step, again at every epoch (losses that
//! change with the epoch, members dropped from a fused group), and only for batches of the
//! captured shape: an epoch's short last batch runs eagerly. Where capture fails the loop trains
//! eagerly and says why.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::NonNull;
use tch::{Device, Tensor};

extern "C" {
    fn sweep_graph_capture_begin(device: c_int, err: *mut c_char, err_len: usize) -> *mut c_void;
    fn sweep_graph_capture_end(graph: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    fn sweep_graph_replay(graph: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    fn sweep_graph_free(graph: *mut c_void);
}

/// `[resources] cuda_graphs`: whether a trial on a CUDA device captures its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphMode {
    Off,
    /// Capture on CUDA devices; train eagerly elsewhere.
    On,
    /// For tests, here and in the benches: "capture" records nothing and "replay" runs the step
    /// eagerly on the static buffers, so everything but the capture itself runs on the CPU. Trials
    /// never ask for it (`[resources] cuda_graphs` is on or off).
    Rehearse,
}

/// One captured piece of GPU work.
struct Graph(NonNull<c_void>);

impl Graph {
    fn capture(device: Device, record: impl FnOnce() -> Result<(), String>) -> Result<Graph, String> {
        let Device::Cuda(index) = device else {
            return Err("CUDA graphs need a CUDA device".into());
        };
        let mut err = [0 as c_char; 1024];
        // SAFETY: the shim writes at most err.len() bytes, NUL-terminated, and returns null on error.
        let raw = unsafe { sweep_graph_capture_begin(index as c_int, err.as_mut_ptr(), err.len()) };
        let graph = Graph(NonNull::new(raw).ok_or_else(|| message(&err))?);
        // A libtorch error inside the capture is a panic in tch; the capture must still end.
        let recorded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(record));
        // SAFETY: a graph whose capture began above.
        let ended = unsafe { sweep_graph_capture_end(graph.0.as_ptr(), err.as_mut_ptr(), err.len()) };
        match recorded {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(panic) => return Err(crate::error::panic_message(panic)),
        }
        if ended != 0 {
            return Err(message(&err));
        }
        Ok(graph)
    }

    fn replay(&self) -> Result<(), String> {
        let mut err = [0 as c_char; 1024];
        // SAFETY: a graph whose capture ended.
        match unsafe { sweep_graph_replay(self.0.as_ptr(), err.as_mut_ptr(), err.len()) } {
            0 => Ok(()),
            _ => Err(message(&err)),
        }
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: the graph came from capture_begin and is freed once.
        unsafe { sweep_graph_free(self.0.as_ptr()) }
    }
}

fn message(err: &[c_char]) -> String {
    // SAFETY: the shim NUL-terminates within the buffer (and the buffer starts zeroed).
    let text = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
    text.lines().next().unwrap_or("libtorch refused").to_string()
}

/// A loop's captured step: its static inputs and how to run it.
struct Captured {
    inputs: Tensor,
    labels: Tensor,
    graph: Option<Graph>,
}

/// The captured step of a loop, if any: set up once, dropped at each epoch, captured after the
/// next eager step, then replayed for every batch of its shape.
pub struct StepGraph {
    mode: GraphMode,
    device: Device,
    captured: Option<Captured>,
    /// Why this run trains eagerly, once it is known.
    off: Option<String>,
}

impl StepGraph {
    pub fn new(mode: GraphMode, device: Device) -> StepGraph {
        let off = match mode {
            GraphMode::Off => Some("cuda_graphs = false".to_string()),
            GraphMode::On if !device.is_cuda() => Some("not a CUDA device".to_string()),
            _ => None,
        };
        StepGraph { mode, device, captured: None, off }
    }

    /// Trains eagerly from now on, for the reason given (an optimizer that steps on the host).
    pub fn turn_off(&mut self, why: String) {
        self.captured = None;
        self.off = Some(why);
    }

    /// Forgets the captured step; the next eager step captures again.
    pub fn new_epoch(&mut self) {
        self.captured = None;
    }

    /// Runs one step through the captured graph when there is one for batches of this shape:
    /// copies the batch into the static inputs and replays (`body` runs only in rehearsal).
    /// Returns false when the caller must run the step eagerly.
    pub fn replay(
        &mut self,
        inputs: &Tensor,
        labels: &Tensor,
        body: impl FnOnce(&Tensor, &Tensor) -> Result<(), String>,
    ) -> Result<bool, String> {
        let Some(c) = &self.captured else {
            return Ok(false);
        };
        if c.inputs.size() != inputs.size() || c.labels.size() != labels.size() {
            return Ok(false);
        }
        tch::no_grad(|| {
            c.inputs.shallow_clone().copy_(inputs);
            c.labels.shallow_clone().copy_(labels);
        });
        match &c.graph {
            Some(graph) => graph.replay()?,
            None => body(&c.inputs, &c.labels)?,
        }
        Ok(true)
    }

    /// After an eager step on a batch of this shape: captures `body` (the step on static inputs)
    /// unless graphs are off or a capture already failed; a failed capture is logged once and the
    /// loop goes on eagerly.
    pub fn capture_after(
        &mut self,
        inputs: &Tensor,
        labels: &Tensor,
        body: impl FnOnce(&Tensor, &Tensor) -> Result<(), String>,
    ) {
        if self.off.is_some() || self.captured.is_some() {
            return;
        }
        let (inputs, labels) = (inputs.copy(), labels.copy());
        let graph = match self.mode {
            GraphMode::Rehearse => None,
            _ => match Graph::capture(self.device, || body(&inputs, &labels)) {
                Ok(graph) => Some(graph),
                Err(why) => {
                    eprintln!("CUDA graph capture failed ({why}); running eagerly");
                    self.off = Some(why);
                    return;
                }
            },
        };
        self.captured = Some(Captured { inputs, labels, graph });
    }

    /// Why steps run eagerly, if they do.
    pub fn eager_because(&self) -> Option<&str> {
        self.off.as_deref()
    }
}

/// CUDA devices libtorch sees.
pub fn cuda_devices() -> i64 {
    extern "C" {
        fn sweep_cuda_device_count() -> c_int;
    }
    // SAFETY: a plain query; 0 without a driver.
    unsafe { sweep_cuda_device_count() as i64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_gpu_capture_says_why_and_the_step_runs_eagerly() {
        assert_eq!(cuda_devices(), 0, "this test expects a machine without a GPU");
        assert!(Graph::capture(Device::Cpu, || Ok(())).err().unwrap().contains("CUDA device"));
        // The shim itself refuses a device that is not there.
        let err = Graph::capture(Device::Cuda(0), || Ok(())).err().unwrap();
        assert!(err.contains("no such CUDA device"), "{err}");

        let x = Tensor::zeros([2, 3], (tch::Kind::Float, Device::Cpu));
        let mut on = StepGraph::new(GraphMode::On, Device::Cpu);
        assert_eq!(on.eager_because(), Some("not a CUDA device"));
        on.capture_after(&x, &x, |_, _| panic!("nothing is captured on the CPU"));
        assert!(!on.replay(&x, &x, |_, _| panic!("no replay on the CPU")).unwrap());
    }

    #[test]
    fn rehearsal_replays_the_step_on_the_static_inputs() {
        let mut g = StepGraph::new(GraphMode::Rehearse, Device::Cpu);
        let batch = |v: f64| Tensor::full([2, 3], v, (tch::Kind::Float, Device::Cpu));
        assert!(!g.replay(&batch(1.0), &batch(1.0), |_, _| Ok(())).unwrap(), "nothing captured yet");
        g.capture_after(&batch(1.0), &batch(1.0), |_, _| panic!("rehearsal records nothing"));
        let mut seen = 0.0;
        assert!(g
            .replay(&batch(5.0), &batch(5.0), |x, _| {
                seen = x.double_value(&[0, 0]);
                Ok(())
            })
            .unwrap());
        assert_eq!(seen, 5.0, "the batch was copied into the static inputs");
        let short = Tensor::zeros([1, 3], (tch::Kind::Float, Device::Cpu));
        assert!(!g.replay(&short, &short, |_, _| Ok(())).unwrap(), "another shape runs eagerly");
        g.new_epoch();
        assert!(!g.replay(&batch(1.0), &batch(1.0), |_, _| Ok(())).unwrap(), "each epoch captures again");
    }
}
