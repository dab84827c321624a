#pragma once
/// @file cli.hpp
/// The command line of `campaign_publishing`: the parsed arguments, and one function per
/// subcommand. Each returns the process exit code.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "../runtime.hpp"

namespace campaign::cli {

/// Exit codes.
enum exit_code : int {
    ok = 0,
    /// the action was refused or rolled back, or the check found a problem
    failed = 1,
    /// bad arguments
    usage = 2,
    /// the campaign is locked by another action
    locked = 3,
};

/// The parsed command line.
struct arguments {
    /// "demo" (no command), "publish", "pause", ...
    std::string command = "demo";
    /// positional arguments after the command
    std::vector<std::string> positional;
    runtime_options runtime;
    std::size_t campaigns = 8;
    /// services: run only these services (empty: all)
    std::vector<std::string> only;
    /// orchestrate: the interval of the scheduled performance ingestion and status refresh
    std::chrono::milliseconds schedule_every{5000};
    bool require_approval = false;
    bool force = false;
    bool reject = false;
    bool cancel = false;
    bool json = false;
    std::string by;
    std::string note;
    /// serve: where the admin API and dashboard listen
    std::uint16_t port = 8080;
    std::string address = "127.0.0.1";
};

/// Parses `argv`; an error message (for the user) on bad arguments.
[[nodiscard]] saga::result<arguments> parse(int argc, char** argv);
/// The usage text.
[[nodiscard]] std::string usage_text();

int run_demo(const arguments& args);
int run_action(const arguments& args);
int run_approve(const arguments& args);
int run_status(const arguments& args);
int run_list(const arguments& args);
int run_history(const arguments& args);
int run_resume(const arguments& args);
int run_check(const arguments& args);
int run_reset(const arguments& args);
int run_setup(const arguments& args);
int run_orchestrate(const arguments& args);
int run_services(const arguments& args);
int run_serve(const arguments& args);

// ---- shared by the subcommands (render.cpp) -----------------------------------------------

/// True when stdout is a terminal (live progress bars instead of plain lines).
[[nodiscard]] bool interactive();
/// "[#######-------]  52%".
[[nodiscard]] std::string progress_bar(double percent, int width = 20);
/// One line: the run's campaign, status, bar, and current phase.
[[nodiscard]] std::string progress_line(const tracker& t);
/// The tracker as a human-readable block (phases with counts, products, ads).
void print_tracker(const tracker& t);
/// The consistency report; returns `ok` or `failed`.
int print_check(const consistency_report& r);
/// Prints an error as "campaign_publishing: <what>" on stderr and returns the exit code that
/// fits it (`locked` for a held lock, `failed` otherwise).
int report_error(const saga::error& e);

}  // namespace campaign::cli
