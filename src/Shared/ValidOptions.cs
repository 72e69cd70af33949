using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Configuration;

/// <summary>Compiled into each assembly whose HTTP pipelines read an upstream's options (a linked file).</summary>
internal static class ValidOptions
{
    /// <summary>
    /// The options, or null when they fail their own validation. That failure is reported under the options' own keys,
    /// at start or at their first use; reading them for an HTTP pipeline, whose options are validated at start too,
    /// would report the same failure a second time.
    /// </summary>
    public static TOptions? OrNull<TOptions>(IServiceProvider services)
        where TOptions : class
    {
        try
        {
            return services.GetRequiredService<IOptions<TOptions>>().Value;
        }
        catch (OptionsValidationException failure) when (failure.OptionsType == typeof(TOptions))
        {
            return null;
        }
    }
}
