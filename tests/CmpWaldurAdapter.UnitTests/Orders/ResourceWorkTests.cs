using CmpWaldurAdapter.Orders;

namespace CmpWaldurAdapter.UnitTests.Orders;

public sealed class ResourceWorkTests
{
    [Fact]
    public void A_teardown_keeps_the_record_id_earlier_builds_gave_it()
    {
        // The id is stored: a teardown an earlier build recorded and left unfinished is found again only under the same one.
        var resource = Guid.Parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");

        Assert.Equal(Guid.Parse("ed95dcbf-9da4-9327-2807-5adf76020317"), OrderProcessor.TerminationWithoutOrder(resource));
    }
}
