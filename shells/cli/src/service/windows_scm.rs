//! The Windows service control manager through `windows-sys`: the calls of a plan's
//! [`ScmStep`]s, and `service run`, the process the SCM starts.
//!
//! ```text
//! SCM ──starts──► cropscode.exe service run … ──► run(): config, log file, StartServiceCtrlDispatcherW
//!                                                   └─► service_main (SCM's thread): RUNNING, run_agent(shutdown)
//! SCM ──STOP / SHUTDOWN──► handler ──control_action──► STOP_PENDING, shutdown fires ──► the SIGTERM drain
//!                                                   └─► run_agent returns: STOPPED (exit code 1 on failure,
//!                                                       so the recovery actions restart it)
//! ```
//!
//! `unsafe` only where the OS leaves no choice: the FFI calls, each with its `SAFETY:` line.

use std::ffi::c_void;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use windows_sys::Win32::System::Services::{
    ChangeServiceConfig2W, CloseServiceHandle, ControlService, CreateServiceW, DeleteService, OpenSCManagerW,
    OpenServiceW, QueryServiceStatus, RegisterServiceCtrlHandlerExW, SC_ACTION, SC_ACTION_RESTART, SC_HANDLE,
    SC_MANAGER_ALL_ACCESS, SC_MANAGER_CONNECT, SERVICE_ACCEPT_SHUTDOWN, SERVICE_ACCEPT_STOP, SERVICE_ALL_ACCESS,
    SERVICE_AUTO_START, SERVICE_CONFIG_DESCRIPTION, SERVICE_CONFIG_FAILURE_ACTIONS,
    SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, SERVICE_CONTROL_STOP, SERVICE_DESCRIPTIONW, SERVICE_ERROR_NORMAL,
    SERVICE_FAILURE_ACTIONS_FLAG, SERVICE_FAILURE_ACTIONSW, SERVICE_QUERY_STATUS, SERVICE_RUNNING,
    SERVICE_START_PENDING, SERVICE_STATUS, SERVICE_STOP_PENDING, SERVICE_STOPPED, SERVICE_TABLE_ENTRYW,
    SERVICE_WIN32_OWN_PROCESS, SetServiceStatus, StartServiceCtrlDispatcherW, StartServiceW,
};

use super::RunCommand;
use super::log_file::RotatingFile;
use super::windows::{ControlAction, DESCRIPTION, DISPLAY_NAME, RESET_PERIOD_S, RESTART_DELAYS_MS, ScmStep};
use crate::Failure;
use crate::config::{self, Config, Env};

const NO_ERROR: u32 = 0;
const ERROR_ACCESS_DENIED: i32 = 5;
const ERROR_CALL_NOT_IMPLEMENTED: u32 = 120;
const ERROR_INVALID_LEVEL: i32 = 124;
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
const ERROR_SERVICE_EXISTS: i32 = 1073;
const ERROR_SERVICE_SPECIFIC_ERROR: u32 = 1066;
/// How long a stop may take before `sc stop` (and uninstall) give up waiting: the drain's
/// bound plus a margin.
const STOP_WAIT: Duration = Duration::from_secs(60);

fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(Some(0)).collect()
}

/// A service or manager handle, closed when dropped.
struct Handle(SC_HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from OpenSCManagerW/OpenServiceW/CreateServiceW and is closed once.
        unsafe { CloseServiceHandle(self.0) };
    }
}

fn os_error(what: &str) -> Failure {
    let error = std::io::Error::last_os_error();
    let hint = match error.raw_os_error() {
        Some(ERROR_ACCESS_DENIED) => ": run it from an elevated (administrator) prompt",
        Some(ERROR_SERVICE_DOES_NOT_EXIST) => ": the service is not installed (`cropscode service install`)",
        Some(ERROR_SERVICE_EXISTS) => ": already installed (`cropscode service uninstall` first)",
        _ => "",
    };
    Failure::Runtime(format!("{what}: {error}{hint}"))
}

fn manager(access: u32) -> Result<Handle, Failure> {
    // SAFETY: null machine and database names mean the local, active database.
    let handle = unsafe { OpenSCManagerW(std::ptr::null(), std::ptr::null(), access) };
    if handle.is_null() { Err(os_error("cannot open the service control manager")) } else { Ok(Handle(handle)) }
}

fn service(name: &str, access: u32) -> Result<Handle, Failure> {
    service_or_code(name, access)?.map_err(|_| os_error("cannot open the service"))
}

/// The service, or the OS error code of opening it (read before anything else can reset it).
fn service_or_code(name: &str, access: u32) -> Result<Result<Handle, Option<i32>>, Failure> {
    let manager = manager(SC_MANAGER_CONNECT)?;
    let name = wide(name);
    // SAFETY: `manager` is open and `name` is NUL-terminated.
    let handle = unsafe { OpenServiceW(manager.0, name.as_ptr(), access) };
    if handle.is_null() { Ok(Err(std::io::Error::last_os_error().raw_os_error())) } else { Ok(Ok(Handle(handle))) }
}

fn query(service: &Handle) -> Result<SERVICE_STATUS, Failure> {
    // SAFETY: SERVICE_STATUS is plain data; QueryServiceStatus fills it.
    let mut status: SERVICE_STATUS = unsafe { std::mem::zeroed() };
    // SAFETY: `service` is open with SERVICE_QUERY_STATUS (or more); `status` is writable.
    if unsafe { QueryServiceStatus(service.0, &mut status) } == 0 {
        return Err(os_error("cannot query the service"));
    }
    Ok(status)
}

fn state_name(state: u32) -> &'static str {
    match state {
        SERVICE_STOPPED => "stopped",
        SERVICE_START_PENDING => "starting",
        SERVICE_STOP_PENDING => "stopping",
        SERVICE_RUNNING => "running",
        _ => "other",
    }
}

/// Carries out one SCM call.
pub fn call(step: &ScmStep) -> Result<(), Failure> {
    match step {
        ScmStep::Create { name, command_line } => create(name, command_line),
        ScmStep::Start { name } => {
            let service = service(name, SERVICE_ALL_ACCESS)?;
            // SAFETY: `service` is open; no arguments are passed.
            if unsafe { StartServiceW(service.0, 0, std::ptr::null()) } == 0 {
                return Err(os_error("cannot start the service"));
            }
            Ok(())
        }
        ScmStep::Stop { name, if_running } => stop(name, *if_running),
        ScmStep::Delete { name } => {
            let service = service(name, SERVICE_ALL_ACCESS)?;
            // SAFETY: `service` is open with DELETE access (SERVICE_ALL_ACCESS).
            if unsafe { DeleteService(service.0) } == 0 {
                return Err(os_error("cannot delete the service"));
            }
            Ok(())
        }
        ScmStep::Query { name } => {
            let status = query(&service(name, SERVICE_QUERY_STATUS)?)?;
            println!("{name}: {}", state_name(status.dwCurrentState));
            if status.dwCurrentState == SERVICE_RUNNING {
                Ok(())
            } else {
                Err(Failure::Runtime(format!("{name} is not running")))
            }
        }
    }
}

fn create(name: &str, command_line: &str) -> Result<(), Failure> {
    let manager = manager(SC_MANAGER_ALL_ACCESS)?;
    let (wname, display, binary) = (wide(name), wide(DISPLAY_NAME), wide(command_line));
    // SAFETY: every string is NUL-terminated and outlives the call; a null account is LocalSystem.
    let handle = unsafe {
        CreateServiceW(
            manager.0,
            wname.as_ptr(),
            display.as_ptr(),
            SERVICE_ALL_ACCESS,
            SERVICE_WIN32_OWN_PROCESS,
            SERVICE_AUTO_START,
            SERVICE_ERROR_NORMAL,
            binary.as_ptr(),
            std::ptr::null(),
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if handle.is_null() {
        return Err(os_error("cannot create the service"));
    }
    let service = Handle(handle);
    let mut description = wide(DESCRIPTION);
    let info = SERVICE_DESCRIPTIONW { lpDescription: description.as_mut_ptr() };
    let mut actions: Vec<SC_ACTION> =
        RESTART_DELAYS_MS.iter().map(|&delay| SC_ACTION { Type: SC_ACTION_RESTART, Delay: delay }).collect();
    let failure = SERVICE_FAILURE_ACTIONSW {
        dwResetPeriod: RESET_PERIOD_S,
        lpRebootMsg: std::ptr::null_mut(),
        lpCommand: std::ptr::null_mut(),
        cActions: actions.len() as u32,
        lpsaActions: actions.as_mut_ptr(),
    };
    let flag = SERVICE_FAILURE_ACTIONS_FLAG { fFailureActionsOnNonCrashFailures: 1 };
    let configs: [(u32, *const c_void); 3] = [
        (SERVICE_CONFIG_DESCRIPTION, &info as *const _ as *const c_void),
        (SERVICE_CONFIG_FAILURE_ACTIONS, &failure as *const _ as *const c_void),
        (SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &flag as *const _ as *const c_void),
    ];
    for (level, info) in configs {
        // SAFETY: `info` points at the structure `level` names, alive for the call.
        if unsafe { ChangeServiceConfig2W(service.0, level, info) } == 0 {
            // Wine's SCM lacks the "also on a non-crash failure" flag (Windows has it since
            // Vista): the service then restarts after crashes only.
            if level == SERVICE_CONFIG_FAILURE_ACTIONS_FLAG
                && std::io::Error::last_os_error().raw_os_error() == Some(ERROR_INVALID_LEVEL)
            {
                println!("note: this service manager restarts the service after a crash only, not after an error exit");
                continue;
            }
            let failure = os_error("cannot configure the service");
            // SAFETY: `service` is open with DELETE access; a half-configured service is removed.
            unsafe { DeleteService(service.0) };
            return Err(failure);
        }
    }
    Ok(())
}

fn stop(name: &str, if_running: bool) -> Result<(), Failure> {
    let service = match service_or_code(name, SERVICE_ALL_ACCESS)? {
        Ok(service) => service,
        Err(Some(ERROR_SERVICE_DOES_NOT_EXIST)) if if_running => return Ok(()),
        Err(code) => {
            let error = code.map(std::io::Error::from_raw_os_error).unwrap_or_else(std::io::Error::last_os_error);
            return Err(Failure::Runtime(format!("cannot open the service: {error}")));
        }
    };
    // SAFETY: SERVICE_STATUS is plain data.
    let mut status: SERVICE_STATUS = unsafe { std::mem::zeroed() };
    // SAFETY: `service` is open with SERVICE_STOP (in SERVICE_ALL_ACCESS); `status` is writable.
    if unsafe { ControlService(service.0, SERVICE_CONTROL_STOP, &mut status) } == 0 {
        let error = std::io::Error::last_os_error();
        if if_running && error.raw_os_error() == Some(ERROR_SERVICE_NOT_ACTIVE) {
            return Ok(());
        }
        return Err(Failure::Runtime(format!("cannot stop the service: {error}")));
    }
    let deadline = Instant::now() + STOP_WAIT;
    while query(&service)?.dwCurrentState != SERVICE_STOPPED {
        if Instant::now() > deadline {
            return Err(Failure::Runtime(format!("{name} did not stop within {}s", STOP_WAIT.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

// --- service run -------------------------------------------------------------------------

/// The configuration `run` resolved, taken by `service_main`.
static CONFIG: Mutex<Option<Config>> = Mutex::new(None);
/// How the worker ended, for `run` to return.
static OUTCOME: Mutex<Option<Result<(), Failure>>> = Mutex::new(None);
/// Fires the worker's shutdown.
static STOP: Mutex<Option<smol::channel::Sender<()>>> = Mutex::new(None);
/// The SERVICE_STATUS_HANDLE, as an integer (it is only ever passed back to the SCM).
static STATUS_HANDLE: AtomicUsize = AtomicUsize::new(0);

/// `cropscode service run`: enters the service dispatcher; returns when the service stopped.
pub fn run(command: &RunCommand) -> Result<(), Failure> {
    let mut env = Env::from_process();
    if let Some(home) = &command.home {
        env = env.with_var("USERPROFILE", home.as_os_str()).with_var("HOME", home.as_os_str());
    }
    let config = config::resolve(&command.config_flags(), &env)?;
    let log = RotatingFile::in_data_dir(&config.data_dir.value);
    crate::logging::init_to(config.log_format.value, config.log_level.value.targets.clone(), Mutex::new(log));
    *lock(&CONFIG) = Some(config);
    let mut name = wide(super::NAME);
    let table = [
        SERVICE_TABLE_ENTRYW { lpServiceName: name.as_mut_ptr(), lpServiceProc: Some(service_main) },
        SERVICE_TABLE_ENTRYW { lpServiceName: std::ptr::null_mut(), lpServiceProc: None },
    ];
    // SAFETY: the table ends with a null entry and outlives the call, which blocks until the
    // service has stopped.
    if unsafe { StartServiceCtrlDispatcherW(table.as_ptr()) } == 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
            return Err(Failure::Config(
                "`cropscode service run` is started by the service control manager; in a console run \
                 `cropscode worker`"
                    .into(),
            ));
        }
        return Err(Failure::Runtime(format!("cannot reach the service control manager: {error}")));
    }
    lock(&OUTCOME).take().unwrap_or(Ok(()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn set_status(state: u32, exit_code: u32, wait_hint: Duration) {
    let accepted = if state == SERVICE_RUNNING { SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN } else { 0 };
    let status = SERVICE_STATUS {
        dwServiceType: SERVICE_WIN32_OWN_PROCESS,
        dwCurrentState: state,
        dwControlsAccepted: accepted,
        dwWin32ExitCode: if exit_code == 0 { NO_ERROR } else { ERROR_SERVICE_SPECIFIC_ERROR },
        dwServiceSpecificExitCode: exit_code,
        dwCheckPoint: 0,
        dwWaitHint: wait_hint.as_millis() as u32,
    };
    let handle = STATUS_HANDLE.load(Ordering::Acquire) as *mut c_void;
    if !handle.is_null() {
        // SAFETY: the handle came from RegisterServiceCtrlHandlerExW and is never closed.
        unsafe { SetServiceStatus(handle, &status) };
    }
}

/// Runs on the dispatcher's thread: registers the handler, runs the worker to its end.
unsafe extern "system" fn service_main(_argc: u32, _argv: *mut windows_sys::core::PWSTR) {
    let name = wide(super::NAME);
    // SAFETY: `name` is NUL-terminated; the handler is a plain function and needs no context.
    let handle = unsafe { RegisterServiceCtrlHandlerExW(name.as_ptr(), Some(handler), std::ptr::null()) };
    if handle.is_null() {
        tracing::error!(error = %std::io::Error::last_os_error(), "cannot register the service control handler");
        return;
    }
    STATUS_HANDLE.store(handle as usize, Ordering::Release);
    let (tx, rx) = smol::channel::bounded::<()>(1);
    *lock(&STOP) = Some(tx);
    set_status(SERVICE_RUNNING, 0, Duration::ZERO);
    let outcome = match lock(&CONFIG).take() {
        Some(config) => {
            let shutdown = async move {
                let _ = rx.recv().await;
                tracing::info!("stop requested by the service control manager: draining");
            };
            crate::worker::run_agent(&config, shutdown)
        }
        None => Err(Failure::Runtime("the service started without its configuration".into())),
    };
    if let Err(failure) = &outcome {
        tracing::error!("the worker stopped: {failure}");
    }
    let code = if outcome.is_ok() { 0 } else { 1 };
    *lock(&OUTCOME) = Some(outcome);
    set_status(SERVICE_STOPPED, code, Duration::ZERO);
}

/// The SCM's control handler: stop and shutdown start the SIGTERM drain.
unsafe extern "system" fn handler(control: u32, _event: u32, _data: *mut c_void, _context: *mut c_void) -> u32 {
    match super::windows::control_action(control) {
        ControlAction::Drain => {
            set_status(SERVICE_STOP_PENDING, 0, Duration::from_secs(30));
            if let Some(tx) = lock(&STOP).take() {
                let _ = tx.try_send(());
            }
            NO_ERROR
        }
        ControlAction::Report => NO_ERROR,
        ControlAction::NotImplemented => ERROR_CALL_NOT_IMPLEMENTED,
    }
}
