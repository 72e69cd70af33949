using CmpWaldurAdapter.Cli;

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    // First Ctrl-C stops gracefully; a second one kills.
    if (!stop.IsCancellationRequested)
    {
        e.Cancel = true;
        stop.Cancel();
    }
};

return await AdapterCli.RunAsync(args, new CommandContext(Console.Out, Console.Error), stop.Token);
