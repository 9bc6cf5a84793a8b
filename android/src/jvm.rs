//! Calls into the Java side of the NativeActivity through JNI (the app has no Java code of its
//! own): the runtime camera permission (Android 6+ asks the user at run time) and the display
//! rotation the camera frames are turned for.

use android_activity::AndroidApp;
use anyhow::{anyhow, Result};
use jni::objects::JObject;
use jni::{jni_sig, jni_str, Env, JValue, JavaVM};

const CAMERA: &str = "android.permission.CAMERA";
/// PackageManager.PERMISSION_GRANTED.
const GRANTED: i32 = 0;

/// Runs `f` with the activity object on this thread (attached to the VM for the call).
fn with_activity<T>(app: &AndroidApp, f: impl FnOnce(&mut Env, &JObject) -> jni::errors::Result<T>) -> Result<T> {
    // SAFETY: android-activity hands out the process's JavaVM and a global reference to the
    // activity, both valid for the app's lifetime.
    let vm = unsafe { JavaVM::from_raw(app.vm_as_ptr().cast()) };
    vm.attach_current_thread(|env| {
        // SAFETY: a global reference is usable as a local one; JObject does not delete it.
        let activity = unsafe { JObject::from_raw(env, app.activity_as_ptr().cast()) };
        f(env, &activity)
    })
    .map_err(|e: jni::errors::Error| anyhow!("JNI call failed: {e}"))
}

/// Context.checkSelfPermission(CAMERA) == PERMISSION_GRANTED.
pub fn camera_permission_granted(app: &AndroidApp) -> Result<bool> {
    with_activity(app, |env, activity| {
        let name = env.new_string(CAMERA)?;
        let r = env
            .call_method(activity, jni_str!("checkSelfPermission"), jni_sig!("(Ljava/lang/String;)I"), &[JValue::Object(&name)])?
            .i()?;
        Ok(r == GRANTED)
    })
}

/// Activity.requestPermissions([CAMERA], 1): shows the system dialog. The answer is not
/// delivered to native code (NativeActivity ignores onRequestPermissionsResult); the capture
/// thread sees it by checking again every second.
pub fn request_camera_permission(app: &AndroidApp) -> Result<()> {
    with_activity(app, |env, activity| {
        let name = env.new_string(CAMERA)?;
        let string_class = env.find_class(jni_str!("java/lang/String"))?;
        let names = env.new_object_array(1, &string_class, &name)?;
        env.call_method(activity, jni_str!("requestPermissions"), jni_sig!("([Ljava/lang/String;I)V"), &[JValue::Object(&names), JValue::Int(1)])?;
        Ok(())
    })
}

/// Asks for the permission on the Java main thread (where the dialog belongs), logging failures.
pub fn request_camera_permission_on_main_thread(app: &AndroidApp) {
    let a = app.clone();
    app.run_on_java_main_thread(Box::new(move || {
        if let Err(e) = request_camera_permission(&a) {
            log::error!("cannot ask for the camera permission: {e:#}");
        }
    }));
}

/// Display.getRotation() of the default display, in clockwise degrees (0, 90, 180, 270).
pub fn display_rotation(app: &AndroidApp) -> Result<i32> {
    with_activity(app, |env, activity| {
        let wm = env.call_method(activity, jni_str!("getWindowManager"), jni_sig!("()Landroid/view/WindowManager;"), &[])?.l()?;
        let display = env.call_method(&wm, jni_str!("getDefaultDisplay"), jni_sig!("()Landroid/view/Display;"), &[])?.l()?;
        let r = env.call_method(&display, jni_str!("getRotation"), jni_sig!("()I"), &[])?.i()?;
        Ok(r.clamp(0, 3) * 90)
    })
}
