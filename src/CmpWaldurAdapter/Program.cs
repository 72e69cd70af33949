using CmpWaldurAdapter.Cli;

// Not disposed: cancelling runs the commands' continuations inline on the signal thread, and a disposed source
// would make the signal handler throw once Main returns from within that same call.
var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    // First Ctrl-C stops gracefully; a second one kills.
    if (!stop.IsCancellationRequested)
    {
        e.Cancel = true;
        stop.Cancel();
    }
};

// Kubernetes stops pods with SIGTERM: the same graceful stop, also for a command or a start still migrating the
// database (the host listens for it only once started; killed mid-migration, SQLite keeps EF Core's lock row).
using var terminate = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stop.Cancel();
});

return await AdapterCli.RunAsync(args, new CommandContext(Console.Out, Console.Error), stop.Token);
