//! The part of the NDK Camera2 C API (libcamera2ndk, API 24+) that the capture needs, declared
//! from the NDK headers (NdkCameraManager.h, NdkCameraDevice.h, NdkCameraCaptureSession.h,
//! NdkCaptureRequest.h, NdkCameraMetadata*.h). ndk-sys has no camera bindings.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

pub type camera_status_t = c_int;
pub const ACAMERA_OK: camera_status_t = 0;

macro_rules! opaque {
    ($($name:ident),*) => { $( #[repr(C)] pub struct $name { _private: [u8; 0] } )* };
}
opaque!(
    ACameraManager,
    ACameraDevice,
    ACameraMetadata,
    ACaptureRequest,
    ACameraOutputTarget,
    ACaptureSessionOutput,
    ACaptureSessionOutputContainer,
    ACameraCaptureSession
);

/// ANativeWindow (ACameraWindowType on Android).
pub type ACameraWindowType = c_void;

#[repr(C)]
pub struct ACameraIdList {
    pub num_cameras: c_int,
    pub camera_ids: *const *const c_char,
}

#[repr(C)]
pub struct ACameraDevice_StateCallbacks {
    pub context: *mut c_void,
    pub on_disconnected: Option<unsafe extern "C" fn(context: *mut c_void, device: *mut ACameraDevice)>,
    pub on_error: Option<unsafe extern "C" fn(context: *mut c_void, device: *mut ACameraDevice, error: c_int)>,
}

pub type SessionCallback = Option<unsafe extern "C" fn(context: *mut c_void, session: *mut ACameraCaptureSession)>;

#[repr(C)]
pub struct ACameraCaptureSession_stateCallbacks {
    pub context: *mut c_void,
    pub on_closed: SessionCallback,
    pub on_ready: SessionCallback,
    pub on_active: SessionCallback,
}

/// `data` is a union of pointers to the entry's element type.
#[repr(C)]
pub struct ACameraMetadata_const_entry {
    pub tag: u32,
    pub type_: u8,
    pub count: u32,
    pub data: *const c_void,
}

// Metadata tags: section << 16 | index (ACAMERA_LENS = 8, ACAMERA_SCALER = 13, ACAMERA_SENSOR = 14).
pub const ACAMERA_LENS_FACING: u32 = (8 << 16) + 5;
pub const ACAMERA_SCALER_AVAILABLE_STREAM_CONFIGURATIONS: u32 = (13 << 16) + 10;
pub const ACAMERA_SENSOR_ORIENTATION: u32 = (14 << 16) + 14;

pub const ACAMERA_LENS_FACING_FRONT: u8 = 0;
pub const ACAMERA_LENS_FACING_BACK: u8 = 1;
/// Stream configuration entries are (format, width, height, is_input) quadruples.
pub const ACAMERA_SCALER_AVAILABLE_STREAM_CONFIGURATIONS_OUTPUT: i32 = 0;
pub const AIMAGE_FORMAT_YUV_420_888: i32 = 0x23;
pub const TEMPLATE_PREVIEW: c_int = 1;

#[link(name = "camera2ndk")]
extern "C" {
    pub fn ACameraManager_create() -> *mut ACameraManager;
    pub fn ACameraManager_delete(manager: *mut ACameraManager);
    pub fn ACameraManager_getCameraIdList(manager: *mut ACameraManager, list: *mut *mut ACameraIdList) -> camera_status_t;
    pub fn ACameraManager_deleteCameraIdList(list: *mut ACameraIdList);
    pub fn ACameraManager_getCameraCharacteristics(
        manager: *mut ACameraManager,
        camera_id: *const c_char,
        characteristics: *mut *mut ACameraMetadata,
    ) -> camera_status_t;
    pub fn ACameraManager_openCamera(
        manager: *mut ACameraManager,
        camera_id: *const c_char,
        callback: *mut ACameraDevice_StateCallbacks,
        device: *mut *mut ACameraDevice,
    ) -> camera_status_t;

    pub fn ACameraMetadata_getConstEntry(metadata: *const ACameraMetadata, tag: u32, entry: *mut ACameraMetadata_const_entry) -> camera_status_t;
    pub fn ACameraMetadata_free(metadata: *mut ACameraMetadata);

    pub fn ACameraDevice_close(device: *mut ACameraDevice) -> camera_status_t;
    pub fn ACameraDevice_createCaptureRequest(device: *const ACameraDevice, template: c_int, request: *mut *mut ACaptureRequest) -> camera_status_t;
    pub fn ACameraDevice_createCaptureSession(
        device: *mut ACameraDevice,
        outputs: *const ACaptureSessionOutputContainer,
        callbacks: *const ACameraCaptureSession_stateCallbacks,
        session: *mut *mut ACameraCaptureSession,
    ) -> camera_status_t;

    pub fn ACaptureSessionOutputContainer_create(container: *mut *mut ACaptureSessionOutputContainer) -> camera_status_t;
    pub fn ACaptureSessionOutputContainer_free(container: *mut ACaptureSessionOutputContainer);
    pub fn ACaptureSessionOutputContainer_add(container: *mut ACaptureSessionOutputContainer, output: *const ACaptureSessionOutput) -> camera_status_t;
    pub fn ACaptureSessionOutput_create(window: *mut ACameraWindowType, output: *mut *mut ACaptureSessionOutput) -> camera_status_t;
    pub fn ACaptureSessionOutput_free(output: *mut ACaptureSessionOutput);

    pub fn ACameraOutputTarget_create(window: *mut ACameraWindowType, target: *mut *mut ACameraOutputTarget) -> camera_status_t;
    pub fn ACameraOutputTarget_free(target: *mut ACameraOutputTarget);
    pub fn ACaptureRequest_addTarget(request: *mut ACaptureRequest, target: *const ACameraOutputTarget) -> camera_status_t;
    pub fn ACaptureRequest_free(request: *mut ACaptureRequest);

    pub fn ACameraCaptureSession_setRepeatingRequest(
        session: *mut ACameraCaptureSession,
        callbacks: *mut c_void,
        num_requests: c_int,
        requests: *mut *mut ACaptureRequest,
        sequence_id: *mut c_int,
    ) -> camera_status_t;
    pub fn ACameraCaptureSession_stopRepeating(session: *mut ACameraCaptureSession) -> camera_status_t;
    pub fn ACameraCaptureSession_close(session: *mut ACameraCaptureSession);
}

/// camera_status_t as words (NdkCameraError.h, ACAMERA_ERROR_BASE = -10000).
pub fn status_text(s: camera_status_t) -> String {
    let what = match s {
        -10000 => "unknown error",
        -10001 => "invalid parameter",
        -10002 => "camera disconnected",
        -10003 => "not enough memory",
        -10004 => "metadata not found",
        -10005 => "camera device error",
        -10006 => "camera service error",
        -10007 => "session closed",
        -10008 => "invalid operation",
        -10009 => "stream configuration failed",
        -10010 => "camera in use by another app",
        -10011 => "too many cameras in use",
        -10012 => "camera disabled by policy",
        -10013 => "permission denied",
        -10014 => "unsupported operation",
        _ => "error",
    };
    format!("{what} ({s})")
}

/// ACameraDevice_ErrorStateCallback codes (ERROR_CAMERA_IN_USE = 1 ...).
pub fn device_error_text(e: c_int) -> &'static str {
    match e {
        1 => "the camera is in use by another app",
        2 => "too many cameras are open",
        3 => "the camera is disabled by a device policy",
        4 => "the camera device failed",
        5 => "the camera service failed",
        _ => "the camera reported an error",
    }
}
