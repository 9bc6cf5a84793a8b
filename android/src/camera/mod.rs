//! Camera frames on Android: the NDK Camera2 API (libcamera2ndk) streaming YUV_420_888 into an
//! AImageReader (libmediandk), converted to upright RGB frames by `edgesight::yuv` and published
//! to the shared latest-wins pipeline. Runs on the capture thread through
//! `edgesight::live::capture::run_with`, which turns every error here into a message on screen
//! and a retry a second later (camera busy, permission not granted yet, camera disconnected).

mod ffi;

use crate::jvm;
use android_activity::AndroidApp;
use anyhow::{anyhow, bail, Context, Result};
use edgesight::live::capture::leave;
use edgesight::live::{Shared, SourceInfo};
use edgesight::yuv::{self, Plane, Rotation, Yuv420};
use ndk::media::image_reader::{AcquireResult, Image, ImageFormat, ImageReader};
use std::ffi::{c_int, c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the user sees when the camera permission is missing.
pub const PERMISSION_MESSAGE: &str = "edgesight needs the camera permission to show the camera. \
     Tap \"allow camera\" (or allow it in Settings > Apps > edgesight > Permissions); \
     the camera starts by itself once it is allowed.";

/// Frames kept by the image reader: one being converted, one arriving, one spare.
const READER_IMAGES: i32 = 3;
/// A camera that delivers nothing for this long is treated as stopped (then reopened).
const STALL: Duration = Duration::from_secs(5);

fn check(status: ffi::camera_status_t, what: &str) -> Result<()> {
    if status == ffi::ACAMERA_OK {
        Ok(())
    } else {
        bail!("{what}: {}", ffi::status_text(status))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facing {
    Back,
    Front,
    External,
}

/// A camera the system lists, in our order: back cameras first (index 0 is the main rear
/// camera on nearly every phone), then front, then external.
#[derive(Debug, Clone)]
pub struct CameraInfo {
    pub id: CString,
    pub facing: Facing,
    /// Clockwise degrees the sensor image must be turned to be upright in the device's
    /// natural orientation (ACAMERA_SENSOR_ORIENTATION).
    pub sensor_orientation: i32,
    /// Output sizes offered for YUV_420_888.
    pub yuv_sizes: Vec<(i32, i32)>,
}

impl CameraInfo {
    pub fn describe(&self, index: usize) -> String {
        let facing = match self.facing {
            Facing::Back => "rear",
            Facing::Front => "front",
            Facing::External => "external",
        };
        format!("camera {index}: {facing} (id {})", self.id.to_string_lossy())
    }

    /// Clockwise rotation that makes frames upright on a display turned `display_deg`.
    pub fn rotation(&self, display_deg: i32) -> i32 {
        match self.facing {
            Facing::Front => (self.sensor_orientation + display_deg).rem_euclid(360),
            _ => (self.sensor_orientation - display_deg).rem_euclid(360),
        }
    }

    /// The offered size closest to the request (first by how far each side is off).
    pub fn closest_size(&self, width: u32, height: u32) -> Option<(i32, i32)> {
        let (w, h) = (width as i64, height as i64);
        self.yuv_sizes.iter().copied().min_by_key(|&(sw, sh)| (sw as i64 - w).abs() + (sh as i64 - h).abs())
    }
}

struct Manager(*mut ffi::ACameraManager);

impl Manager {
    fn new() -> Result<Manager> {
        // SAFETY: plain constructor; null means the camera service is unavailable.
        let m = unsafe { ffi::ACameraManager_create() };
        if m.is_null() {
            bail!("the camera service is not available");
        }
        Ok(Manager(m))
    }

    fn cameras(&self) -> Result<Vec<CameraInfo>> {
        let mut list: *mut ffi::ACameraIdList = ptr::null_mut();
        // SAFETY: valid manager, out pointer to a local.
        check(unsafe { ffi::ACameraManager_getCameraIdList(self.0, &mut list) }, "cannot list cameras")?;
        let mut ids = Vec::new();
        if !list.is_null() {
            // SAFETY: the list stays valid until deleteCameraIdList; ids are C strings.
            unsafe {
                let n = (*list).num_cameras.max(0) as usize;
                for i in 0..n {
                    let id = *(*list).camera_ids.add(i);
                    if !id.is_null() {
                        ids.push(CStr::from_ptr(id).to_owned());
                    }
                }
                ffi::ACameraManager_deleteCameraIdList(list);
            }
        }
        let mut cams = Vec::new();
        for id in ids {
            match self.describe(id) {
                Ok(c) => cams.push(c),
                Err(e) => log::warn!("skipping a camera: {e:#}"),
            }
        }
        cams.sort_by_key(|c| match c.facing {
            Facing::Back => 0,
            Facing::Front => 1,
            Facing::External => 2,
        });
        Ok(cams)
    }

    fn describe(&self, id: CString) -> Result<CameraInfo> {
        let mut meta: *mut ffi::ACameraMetadata = ptr::null_mut();
        // SAFETY: valid manager and id; the metadata is freed below.
        check(unsafe { ffi::ACameraManager_getCameraCharacteristics(self.0, id.as_ptr(), &mut meta) }, "camera characteristics")?;
        let entry = |tag: u32| -> Option<(u32, *const c_void)> {
            let mut e = ffi::ACameraMetadata_const_entry { tag: 0, type_: 0, count: 0, data: ptr::null() };
            // SAFETY: valid metadata; the entry points into it and is read before it is freed.
            let ok = unsafe { ffi::ACameraMetadata_getConstEntry(meta, tag, &mut e) } == ffi::ACAMERA_OK;
            (ok && !e.data.is_null()).then_some((e.count, e.data))
        };
        // SAFETY (all three reads): element types per the metadata definitions (facing: byte,
        // orientation: int32, stream configurations: int32 x 4 per entry), `count` elements.
        let facing = match entry(ffi::ACAMERA_LENS_FACING) {
            Some((n, p)) if n >= 1 => match unsafe { *(p as *const u8) } {
                ffi::ACAMERA_LENS_FACING_BACK => Facing::Back,
                ffi::ACAMERA_LENS_FACING_FRONT => Facing::Front,
                _ => Facing::External,
            },
            _ => Facing::External,
        };
        let sensor_orientation = match entry(ffi::ACAMERA_SENSOR_ORIENTATION) {
            Some((n, p)) if n >= 1 => unsafe { *(p as *const i32) },
            _ => 0,
        };
        let mut yuv_sizes = Vec::new();
        if let Some((n, p)) = entry(ffi::ACAMERA_SCALER_AVAILABLE_STREAM_CONFIGURATIONS) {
            let v = unsafe { std::slice::from_raw_parts(p as *const i32, n as usize) };
            for c in v.chunks_exact(4) {
                if c[0] == ffi::AIMAGE_FORMAT_YUV_420_888 && c[3] == ffi::ACAMERA_SCALER_AVAILABLE_STREAM_CONFIGURATIONS_OUTPUT && c[1] > 0 && c[2] > 0 {
                    yuv_sizes.push((c[1], c[2]));
                }
            }
        }
        // SAFETY: allocated by getCameraCharacteristics, not used after this.
        unsafe { ffi::ACameraMetadata_free(meta) };
        Ok(CameraInfo { id, facing, sensor_orientation, yuv_sizes })
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        // SAFETY: created by ACameraManager_create, dropped once.
        unsafe { ffi::ACameraManager_delete(self.0) }
    }
}

/// Lists the cameras (no permission is needed for this).
pub fn list() -> Result<Vec<CameraInfo>> {
    Manager::new()?.cameras()
}

/// What the device callbacks report, read by the capture loop. Boxed so its address stays put
/// while the camera is open.
#[derive(Default)]
struct DeviceState {
    disconnected: AtomicBool,
    error: AtomicI32,
}

unsafe extern "C" fn on_disconnected(context: *mut c_void, _device: *mut ffi::ACameraDevice) {
    // SAFETY: context is the DeviceState that outlives the device (see Device).
    if let Some(s) = unsafe { (context as *const DeviceState).as_ref() } {
        s.disconnected.store(true, Ordering::SeqCst);
    }
}

unsafe extern "C" fn on_error(context: *mut c_void, _device: *mut ffi::ACameraDevice, error: c_int) {
    // SAFETY: as above.
    if let Some(s) = unsafe { (context as *const DeviceState).as_ref() } {
        s.error.store(error.max(1), Ordering::SeqCst);
    }
}

unsafe extern "C" fn session_event(_context: *mut c_void, _session: *mut ffi::ACameraCaptureSession) {}

/// An open camera. Field order is drop order: the device closes before its callback state goes.
struct Device {
    ptr: *mut ffi::ACameraDevice,
    state: Box<DeviceState>,
}

impl Device {
    fn open(manager: &Manager, id: &CStr) -> Result<Device> {
        let state = Box::<DeviceState>::default();
        let mut callbacks = ffi::ACameraDevice_StateCallbacks {
            context: &*state as *const DeviceState as *mut c_void,
            on_disconnected: Some(on_disconnected),
            on_error: Some(on_error),
        };
        let mut device = ptr::null_mut();
        // SAFETY: valid manager and id; the callbacks are copied by the call, their context
        // lives in `state`, which the returned Device keeps until after ACameraDevice_close.
        check(unsafe { ffi::ACameraManager_openCamera(manager.0, id.as_ptr(), &mut callbacks, &mut device) }, "cannot open the camera")?;
        if device.is_null() {
            bail!("cannot open the camera (no device returned)");
        }
        Ok(Device { ptr: device, state })
    }

    fn failure(&self) -> Option<String> {
        if self.state.disconnected.load(Ordering::SeqCst) {
            return Some("the camera was disconnected (another app may have taken it)".into());
        }
        match self.state.error.load(Ordering::SeqCst) {
            0 => None,
            e => Some(ffi::device_error_text(e).into()),
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: opened by ACameraManager_openCamera, closed once; sessions are closed first.
        unsafe { ffi::ACameraDevice_close(self.ptr) };
    }
}

/// A repeating preview request into one window, with everything it allocated.
struct Session {
    session: *mut ffi::ACameraCaptureSession,
    request: *mut ffi::ACaptureRequest,
    target: *mut ffi::ACameraOutputTarget,
    output: *mut ffi::ACaptureSessionOutput,
    container: *mut ffi::ACaptureSessionOutputContainer,
}

impl Session {
    fn start(device: &Device, window: *mut c_void) -> Result<Session> {
        let mut s = Session {
            session: ptr::null_mut(),
            request: ptr::null_mut(),
            target: ptr::null_mut(),
            output: ptr::null_mut(),
            container: ptr::null_mut(),
        };
        // SAFETY: each call gets valid inputs created just before; whatever was created is
        // released by Session's Drop, also on an early return.
        unsafe {
            check(ffi::ACaptureSessionOutputContainer_create(&mut s.container), "capture outputs")?;
            check(ffi::ACaptureSessionOutput_create(window, &mut s.output), "capture output")?;
            check(ffi::ACaptureSessionOutputContainer_add(s.container, s.output), "capture output")?;
            check(ffi::ACameraOutputTarget_create(window, &mut s.target), "capture target")?;
            check(ffi::ACameraDevice_createCaptureRequest(device.ptr, ffi::TEMPLATE_PREVIEW, &mut s.request), "capture request")?;
            check(ffi::ACaptureRequest_addTarget(s.request, s.target), "capture target")?;
            let callbacks = ffi::ACameraCaptureSession_stateCallbacks {
                context: ptr::null_mut(),
                on_closed: Some(session_event),
                on_ready: Some(session_event),
                on_active: Some(session_event),
            };
            check(ffi::ACameraDevice_createCaptureSession(device.ptr, s.container, &callbacks, &mut s.session), "capture session")?;
            let mut requests = [s.request];
            check(
                ffi::ACameraCaptureSession_setRepeatingRequest(s.session, ptr::null_mut(), 1, requests.as_mut_ptr(), ptr::null_mut()),
                "cannot start the camera stream",
            )?;
        }
        Ok(s)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: every pointer is null or owned by this session, released once, session first.
        unsafe {
            if !self.session.is_null() {
                ffi::ACameraCaptureSession_stopRepeating(self.session);
                ffi::ACameraCaptureSession_close(self.session);
            }
            if !self.request.is_null() {
                ffi::ACaptureRequest_free(self.request);
            }
            if !self.target.is_null() {
                ffi::ACameraOutputTarget_free(self.target);
            }
            if !self.container.is_null() {
                ffi::ACaptureSessionOutputContainer_free(self.container);
            }
            if !self.output.is_null() {
                ffi::ACaptureSessionOutput_free(self.output);
            }
        }
    }
}

fn media(e: ndk::media_error::MediaError) -> anyhow::Error {
    anyhow!("camera image: {e}")
}

fn plane(image: &Image, i: i32) -> Result<Plane<'_>> {
    let stride = |v: i32| usize::try_from(v).map_err(|_| anyhow!("camera image: negative stride"));
    Ok(Plane {
        data: image.plane_data(i).map_err(media)?,
        row_stride: stride(image.plane_row_stride(i).map_err(media)?)?,
        pixel_stride: stride(image.plane_pixel_stride(i).map_err(media)?)?,
    })
}

/// One image from the reader -> an upright RGB frame.
fn to_frame(image: &Image, rotation: Rotation) -> Result<edgesight::frame::Frame> {
    let (w, h) = (image.width().map_err(media)?, image.height().map_err(media)?);
    if image.number_of_planes().map_err(media)? < 3 {
        bail!("camera image has fewer than 3 planes");
    }
    let (w, h) = (usize::try_from(w).unwrap_or(0), usize::try_from(h).unwrap_or(0));
    yuv::to_frame(&Yuv420 { width: w, height: h, y: plane(image, 0)?, u: plane(image, 1)?, v: plane(image, 2)? }, rotation)
}

/// Opens camera `index` (our order, see [`CameraInfo`]) at the size closest to `width` x
/// `height` and publishes its frames until the source changes or the app stops.
pub fn run(app: &AndroidApp, shared: &Shared, generation: u64, index: u32, width: u32, height: u32) -> Result<()> {
    if !jvm::camera_permission_granted(app).context("cannot check the camera permission")? {
        bail!("{PERMISSION_MESSAGE}");
    }
    // Declaration order is teardown order in reverse: session, device, window, reader, manager.
    let manager = Manager::new()?;
    let cams = manager.cameras()?;
    let Some(cam) = cams.get(index as usize) else {
        bail!("camera {index} is not there: this device lists {} camera(s)", cams.len());
    };
    let (w, h) = cam.closest_size(width, height).ok_or_else(|| anyhow!("{} offers no YUV_420_888 output", cam.describe(index as usize)))?;
    // The activity is landscape; ask the display in case the device's natural orientation differs.
    let display = jvm::display_rotation(app).unwrap_or(90);
    let degrees = cam.rotation(display);
    let rotation = Rotation::from_degrees(degrees)?;

    let mut reader = ImageReader::new(w, h, ImageFormat::YUV_420_888, READER_IMAGES).map_err(|e| anyhow!("cannot create the image reader: {e}"))?;
    let arrived = Arc::new((Mutex::new(false), Condvar::new()));
    {
        let arrived = arrived.clone();
        reader
            .set_image_listener(Box::new(move |_| {
                let (flag, cv) = &*arrived;
                *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
                cv.notify_one();
            }))
            .map_err(|e| anyhow!("cannot listen for camera images: {e}"))?;
    }
    let window = reader.window().map_err(|e| anyhow!("image reader window: {e}"))?;
    let device = Device::open(&manager, &cam.id)?;
    let session = Session::start(&device, window.ptr().as_ptr() as *mut c_void)?;

    let (fw, fh) = if degrees % 180 == 0 { (w, h) } else { (h, w) };
    shared.set_source_info(SourceInfo {
        description: format!("{} {w}x{h} YUV_420_888, turned {degrees} degrees", cam.describe(index as usize)),
        width: fw as usize,
        height: fh as usize,
        fps: 30.0,
        frame_rate: "30/1".into(),
    });
    let mut last_frame = Instant::now();
    while !leave(shared, generation) {
        if let Some(problem) = device.failure() {
            bail!("{problem}");
        }
        {
            let (flag, cv) = &*arrived;
            let mut ready = flag.lock().unwrap_or_else(|e| e.into_inner());
            if !*ready {
                ready = cv.wait_timeout(ready, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner()).0;
            }
            *ready = false;
        }
        // Latest wins here too: older queued images are dropped by the reader.
        match reader.acquire_latest_image().map_err(|e| anyhow!("cannot read a camera image: {e}"))? {
            AcquireResult::Image(image) => {
                let frame = to_frame(&image, rotation)?;
                drop(image); // back to the reader before the frame travels on
                shared.publish_frame(frame);
                last_frame = Instant::now();
            }
            _ => {
                if last_frame.elapsed() > STALL {
                    bail!("the camera stopped delivering frames");
                }
            }
        }
    }
    drop(session);
    drop(device);
    Ok(())
}
